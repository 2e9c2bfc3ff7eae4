import { ROLES, type PublicUser, type Role } from '../contract.js'
import { isoNow, type Clock } from '../clock.js'
import { ConflictError, RateLimitedError, UnauthenticatedError, ValidationError } from '../errors.js'
import type { UserStore } from '../store/UserStore.js'
import { ROLE_CAPABILITIES, ROLE_NAMES } from './capabilities.js'
import { MemoryRateBuckets, type RateBuckets, type RateWindow } from '../limits/RateBuckets.js'
import { dummyPasswordHash, hashPassword, hashToken, newToken, verifyPassword } from './passwords.js'
import { Semaphore } from './Semaphore.js'

const WS_TICKET_TTL_MS = 30_000
const MIN_PASSWORD_LENGTH = 8

export interface AuthServiceOptions {
  users: UserStore
  clock: Clock
  tokenTtlMs: number
  /** Login attempts per account and address in the window. */
  loginRateLimit: number
  loginRateWindowMs: number
  /** Login attempts per address over all accounts in the window (default 10 × loginRateLimit). */
  loginAddressRateLimit?: number
  /** Where attempts are counted; SqlRateBuckets shares them between processes (default: this process). */
  buckets?: RateBuckets
  /** Password hashes computed at once (default 1) and logins allowed to wait for one (default 1000). */
  hashConcurrency?: number
  hashQueueMax?: number
}

/** Users, login/logout with revocable bearer tokens (stored hashed), and single-use WS tickets. */
export class AuthService {
  private readonly buckets: RateBuckets
  private readonly accountWindow: RateWindow
  private readonly addressWindow: RateWindow
  private readonly hashing: Semaphore

  constructor(private readonly options: AuthServiceOptions) {
    this.buckets = options.buckets ?? new MemoryRateBuckets({ clock: options.clock })
    this.accountWindow = { limit: options.loginRateLimit, windowMs: options.loginRateWindowMs }
    this.addressWindow = { limit: options.loginAddressRateLimit ?? options.loginRateLimit * 10, windowMs: options.loginRateWindowMs }
    this.hashing = new Semaphore({ concurrency: options.hashConcurrency ?? 1, maxQueue: options.hashQueueMax ?? 1000 })
  }

  async seedRoles(): Promise<void> {
    await this.options.users.syncRoles(ROLE_CAPABILITIES, ROLE_NAMES)
  }

  async createUser(input: { email: string; password: string; roles: Role[]; displayName?: string }): Promise<PublicUser> {
    const email = normaliseEmail(input.email)
    if (!/^[^\s@]+@[^\s@]+$/.test(email) || email.length > 254) throw new ValidationError('A valid email address is required.')
    if (input.password.length < MIN_PASSWORD_LENGTH) {
      throw new ValidationError(`The password must have at least ${MIN_PASSWORD_LENGTH} characters.`)
    }
    for (const role of input.roles) {
      if (!ROLES.includes(role)) throw new ValidationError(`Unknown role ${JSON.stringify(role)}.`)
    }
    if (await this.options.users.findUserByEmail(email)) throw new ConflictError('A user with this email already exists.')
    const id = await this.options.users.createUser(
      { email, displayName: input.displayName ?? '', passwordHash: await this.hashing.run(() => hashPassword(input.password)), createdAt: isoNow(this.options.clock) },
      input.roles,
    )
    return this.publicUser(id, email)
  }

  /** Creates the first administrator when no user exists yet. Returns whether it did. */
  async seedAdministrator(email?: string, password?: string): Promise<boolean> {
    if (!email || !password) return false
    if ((await this.options.users.countUsers()) > 0) return false
    await this.createUser({ email, password, roles: ['administrator'] })
    return true
  }

  /**
   * Checks the password and issues a bearer token. Every attempt is counted BEFORE the password
   * is checked, by an atomic take on the shared counters: per address and account (so a stranger
   * elsewhere cannot lock a user out) and per address over all accounts (so one address cannot
   * try many accounts). However many attempts arrive at once, at most the limit are checked; the
   * rest get 429 without hashing. A successful login gives its hits back. Hashing runs through a
   * small semaphore, so a burst of logins cannot take every core from other requests.
   */
  async login(input: { email: string; password: string; address: string }): Promise<{ token: string; user: PublicUser }> {
    const email = normaliseEmail(input.email)
    const addressKey = `login:address:${input.address}`
    // Hashed: an email (254) and an address would not fit the key column, and need not be stored.
    const accountKey = `login:account:${hashToken(`${email}\n${input.address}`)}`
    const byAddress = await this.buckets.take(addressKey, this.addressWindow)
    if (!byAddress.allowed) throw new RateLimitedError('Too many login attempts from this address; try again later.', byAddress.retryAfterMs)
    const byAccount = await this.buckets.take(accountKey, this.accountWindow)
    if (!byAccount.allowed) {
      await this.buckets.refund(addressKey, this.addressWindow)
      throw new RateLimitedError('Too many failed login attempts for this account; try again later.', byAccount.retryAfterMs)
    }
    let valid = false
    let user: Awaited<ReturnType<UserStore['findUserByEmail']>> = null
    try {
      user = await this.options.users.findUserByEmail(email)
      const hash = user?.passwordHash ?? (await dummyPasswordHash())
      valid = await this.hashing.run(() => verifyPassword(input.password, hash))
    } catch (error) {
      // Not checked (busy, database down): the attempt does not count.
      await this.buckets.refund(addressKey, this.addressWindow).catch(() => undefined)
      await this.buckets.refund(accountKey, this.accountWindow).catch(() => undefined)
      throw error
    }
    if (!user || !valid) throw new UnauthenticatedError('The email or password is wrong.')
    await this.buckets.refund(addressKey, this.addressWindow)
    await this.buckets.reset(accountKey, this.accountWindow)
    const token = await this.issue(user.id, 'bearer', this.options.tokenTtlMs)
    return { token, user: await this.publicUser(user.id, user.email) }
  }

  /** Whether a user with this id exists (for `createdBy` given through the plugin API). */
  async userExists(id: number): Promise<boolean> {
    return (await this.options.users.findUserById(id)) !== null
  }

  /** A user with roles and capabilities as they are now (a background job acting for them). */
  async userById(id: number): Promise<PublicUser | null> {
    const user = await this.options.users.findUserById(id)
    return user ? this.publicUser(user.id, user.email) : null
  }

  /** Password hashes running and waiting (for tests and metrics). */
  get hashQueue(): { running: number; queued: number } {
    return { running: this.hashing.running, queued: this.hashing.queued }
  }

  /** The user a bearer token belongs to, or null when it is unknown, expired or revoked. */
  async authenticate(token: string): Promise<PublicUser | null> {
    const row = await this.options.users.findToken(hashToken(token))
    if (!row || row.kind !== 'bearer' || row.revokedAt || row.expiresAt <= isoNow(this.options.clock)) return null
    const user = await this.options.users.findUserById(row.userId)
    return user ? this.publicUser(user.id, user.email) : null
  }

  /** Revokes the token; returns the session id (its hash) so open sockets of it can be closed. */
  async logout(token: string): Promise<string> {
    const session = hashToken(token)
    await this.options.users.revokeToken(session, isoNow(this.options.clock))
    return session
  }

  /** A single-use ticket for the WebSocket upgrade, tied to the session (bearer token) asking. */
  async issueWsTicket(user: PublicUser, sessionToken: string): Promise<{ ticket: string; expiresAt: string }> {
    const ticket = await this.issue(user.id, 'ws_ticket', WS_TICKET_TTL_MS, hashToken(sessionToken))
    return { ticket, expiresAt: new Date(this.options.clock.now() + WS_TICKET_TTL_MS).toISOString() }
  }

  /** Redeems a ticket once: a second use, a use after it expired, or after its session ended, gets null. */
  async redeemWsTicket(ticket: string): Promise<{ user: PublicUser; session: string } | null> {
    const hash = hashToken(ticket)
    const row = await this.options.users.findToken(hash)
    const now = isoNow(this.options.clock)
    if (!row || row.kind !== 'ws_ticket' || row.expiresAt <= now || !row.sessionTokenHash) return null
    if (!(await this.options.users.revokeToken(hash, now))) return null
    if (!(await this.options.users.liveBearerHashes([row.sessionTokenHash], now)).size) return null
    const user = await this.options.users.findUserById(row.userId)
    return user ? { user: await this.publicUser(user.id, user.email), session: row.sessionTokenHash } : null
  }

  /** Of these sessions (bearer token hashes), the ones still valid now. */
  async liveSessions(sessions: readonly string[]): Promise<Set<string>> {
    return this.options.users.liveBearerHashes(sessions, isoNow(this.options.clock))
  }

  async pruneExpiredTokens(): Promise<number> {
    return this.options.users.deleteExpiredTokens(isoNow(this.options.clock))
  }

  private async issue(userId: number, kind: 'bearer' | 'ws_ticket', ttlMs: number, sessionTokenHash?: string): Promise<string> {
    const { token, hash } = newToken()
    const now = this.options.clock.now()
    await this.options.users.insertToken({
      userId,
      tokenHash: hash,
      kind,
      createdAt: new Date(now).toISOString(),
      expiresAt: new Date(now + ttlMs).toISOString(),
      sessionTokenHash,
    })
    return token
  }

  private async publicUser(id: number, email: string): Promise<PublicUser> {
    const { roles, capabilities } = await this.options.users.rolesAndCapabilities(id)
    return { id, email, roles, capabilities }
  }
}

function normaliseEmail(email: string): string {
  return String(email).trim().toLowerCase()
}
