import type { Knex } from 'knex'

/**
 * A WebSocket ticket remembers the bearer token (session) that asked for it, so that a socket
 * opened with a ticket is closed when that session logs out or expires.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('auth_tokens', (t) => {
    t.string('session_token_hash', 64).nullable()
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('auth_tokens', (t) => {
    t.dropColumn('session_token_hash')
  })
}
