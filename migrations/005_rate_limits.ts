import type { Knex } from 'knex'

/**
 * Fixed-window rate-limit counters shared by every process on the database (core/limits):
 * job creation per user and per plugin, login attempts per address and per account+address.
 * One row per key and window; a hit is one conditional UPSERT on the primary key.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('rate_limits', (t) => {
    t.string('bucket', 300).notNullable()
    /** Window start, epoch ms. */
    t.bigInteger('window_start').notNullable()
    t.integer('hits').notNullable()
    /** Window end, epoch ms: rows past it are deleted. */
    t.bigInteger('expires_at').notNullable()
    t.primary(['bucket', 'window_start'])
    t.index(['expires_at'], 'rate_limits_expires_at')
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('rate_limits')
}
