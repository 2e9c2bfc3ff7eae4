import type { Knex } from 'knex'
import type { Capability, Role } from '../contract.js'
import type { Database } from '../db/createDatabase.js'

export interface UserRow {
  id: number
  email: string
  displayName: string
  passwordHash: string
  createdAt: string
}

export interface TokenRow {
  id: number
  userId: number
  kind: 'bearer' | 'ws_ticket'
  expiresAt: string
  revokedAt: string | null
  /** For a ws_ticket: the hash of the bearer token that asked for it. */
  sessionTokenHash: string | null
}

/** Users, roles, capabilities and tokens: the SQL behind AuthService. */
export class UserStore {
  private readonly k: Knex
  constructor(private readonly db: Database) {
    this.k = db.knex
  }

  /** Makes sure each role exists with exactly the given capabilities (idempotent). */
  async syncRoles(roles: Record<Role, readonly Capability[]>, names: Record<Role, string>): Promise<void> {
    await this.db.transaction(async (trx) => {
      const capabilities = [...new Set(Object.values(roles).flat())]
      await trx('capabilities').insert(capabilities.map((slug) => ({ slug }))).onConflict('slug').ignore()
      for (const [role, caps] of Object.entries(roles)) {
        await trx('roles').insert({ slug: role, name: names[role as Role] }).onConflict('slug').merge(['name'])
        await trx('role_capabilities').where('role_slug', role).delete()
        if (caps.length) {
          await trx('role_capabilities').insert(caps.map((capability_slug) => ({ role_slug: role, capability_slug })))
        }
      }
    })
  }

  async countUsers(): Promise<number> {
    const [row] = await this.k('users').count<{ n: number | string }[]>({ n: '*' })
    return Number(row?.n ?? 0)
  }

  async createUser(user: Omit<UserRow, 'id'>, roles: Role[]): Promise<number> {
    return this.db.transaction(async (trx) => {
      const [inserted] = await trx('users')
        .insert({
          email: user.email,
          display_name: user.displayName,
          password_hash: user.passwordHash,
          created_at: user.createdAt,
        })
        .returning('id')
      const id = typeof inserted === 'object' ? Number(inserted.id) : Number(inserted)
      if (roles.length) await trx('user_roles').insert(roles.map((role_slug) => ({ user_id: id, role_slug })))
      return id
    })
  }

  async findUserByEmail(email: string): Promise<UserRow | null> {
    const row = await this.k('users').where('email', email).first()
    return row ? toUser(row) : null
  }

  async findUserById(id: number): Promise<UserRow | null> {
    const row = await this.k('users').where('id', id).first()
    return row ? toUser(row) : null
  }

  async rolesAndCapabilities(userId: number): Promise<{ roles: Role[]; capabilities: Capability[] }> {
    const rows: { role_slug: Role; capability_slug: Capability | null }[] = await this.k('user_roles as ur')
      .leftJoin('role_capabilities as rc', 'rc.role_slug', 'ur.role_slug')
      .where('ur.user_id', userId)
      .select('ur.role_slug', 'rc.capability_slug')
    const roles = [...new Set(rows.map((row) => row.role_slug))].sort()
    const capabilities = [...new Set(rows.flatMap((row) => (row.capability_slug ? [row.capability_slug] : [])))].sort()
    return { roles, capabilities }
  }

  async insertToken(token: {
    userId: number
    tokenHash: string
    kind: TokenRow['kind']
    createdAt: string
    expiresAt: string
    sessionTokenHash?: string
  }) {
    await this.k('auth_tokens').insert({
      user_id: token.userId,
      token_hash: token.tokenHash,
      kind: token.kind,
      created_at: token.createdAt,
      expires_at: token.expiresAt,
      session_token_hash: token.sessionTokenHash ?? null,
    })
  }

  /** Of the given bearer token hashes, those still unrevoked and unexpired at `now`. */
  async liveBearerHashes(hashes: readonly string[], now: string): Promise<Set<string>> {
    if (hashes.length === 0) return new Set()
    const rows: { token_hash: string }[] = await this.k('auth_tokens')
      .select('token_hash')
      .whereIn('token_hash', [...hashes])
      .where('kind', 'bearer')
      .whereNull('revoked_at')
      .where('expires_at', '>', now)
    return new Set(rows.map((row) => row.token_hash))
  }

  async findToken(tokenHash: string): Promise<TokenRow | null> {
    const row = await this.k('auth_tokens').where('token_hash', tokenHash).first()
    if (!row) return null
    return {
      id: row.id,
      userId: row.user_id,
      kind: row.kind,
      expiresAt: row.expires_at,
      revokedAt: row.revoked_at,
      sessionTokenHash: row.session_token_hash ?? null,
    }
  }

  /** Revokes an unrevoked token; returns false when it was already revoked (single use). */
  async revokeToken(tokenHash: string, at: string): Promise<boolean> {
    const changed = await this.k('auth_tokens').where('token_hash', tokenHash).whereNull('revoked_at').update({ revoked_at: at })
    return changed === 1
  }

  async deleteExpiredTokens(before: string): Promise<number> {
    return this.k('auth_tokens').where('expires_at', '<', before).delete()
  }
}

function toUser(row: any): UserRow {
  return { id: row.id, email: row.email, displayName: row.display_name, passwordHash: row.password_hash, createdAt: row.created_at }
}
