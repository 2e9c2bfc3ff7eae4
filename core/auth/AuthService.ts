import { ROLES, type PublicUser, type Role } from '../contract.js'
import { isoNow, type Clock } from '../clock.js'
import { ConflictError, RateLimitedError, UnauthenticatedError, ValidationError } from '../errors.js'
import type { UserStore } from '../store/UserStore.js'
import { ROLE_CAPABILITIES, ROLE_NAMES } from './capabilities.js'
import { dummyPasswordHash, hashPassword, hashToken, newToken, verifyPassword } from './passwords.js'
import { RateLimiter } from './RateLimiter.js'

const WS_TICKET_TTL_MS = 30_000
const MIN_PASSWORD_LENGTH = 8

export interface AuthServiceOptions {
  users: UserStore
  clock: Clock
  tokenTtlMs: number
  loginRateLimit: number
  loginRateWindowMs: number
}

/** Users, login/logout with revocable bearer tokens (stored hashed), and single-use WS tickets. */
export class AuthService {
  private readonly byAddress: RateLimiter
  private readonly byAccount: RateLimiter

  constructor(private readonly options: AuthServiceOptions) {
    const limiter = { limit: options.loginRateLimit, windowMs: options.loginRateWindowMs, clock: options.clock }
    this.byAddress = new RateLimiter(limiter)
    this.byAccount = new RateLimiter(limiter)
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
      { email, displayName: input.displayName ?? '', passwordHash: await hashPassword(input.password), createdAt: isoNow(this.options.clock) },
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
   * Checks the password and issues a bearer token. Failed attempts are limited per client address
   * and per account, so neither many accounts from one address nor many addresses against one
   * account get through; once blocked, even a right password waits for the window to pass.
   */
  async login(input: { email: string; password: string; address: string }): Promise<{ token: string; user: PublicUser }> {
    const email = normaliseEmail(input.email)
    if (this.byAddress.isBlocked(input.address) || this.byAccount.isBlocked(email)) {
      throw new RateLimitedError('Too many failed login attempts; try again later.')
    }
    const user = await this.options.users.findUserByEmail(email)
    const valid = await verifyPassword(input.password, user?.passwordHash ?? (await dummyPasswordHash()))
    if (!user || !valid) {
      this.byAddress.hit(input.address)
      this.byAccount.hit(email)
      throw new UnauthenticatedError('The email or password is wrong.')
    }
    this.byAccount.reset(email)
    const token = await this.issue(user.id, 'bearer', this.options.tokenTtlMs)
    return { token, user: await this.publicUser(user.id, user.email) }
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
