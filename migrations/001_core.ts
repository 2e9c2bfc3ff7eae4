import type { Knex } from 'knex'

/**
 * The core schema: posts + post_meta (every job lives here), authors, users, roles and tokens.
 * Timestamps are ISO-8601 UTC strings with milliseconds everywhere (sortable as text, identical
 * on SQLite and PostgreSQL).
 */

/** Meta keys that queries filter or sort on; each gets a partial index on (meta_value, post_id). */
export const INDEXED_META_KEYS = [
  'status',
  'type',
  'source',
  'queue_order',
  'locked_until',
  'completed_at',
  'parent_job_id',
] as const

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('users', (t) => {
    t.increments('id').primary()
    t.string('email', 254).notNullable().unique()
    t.string('display_name', 200).notNullable().defaultTo('')
    t.string('password_hash', 300).notNullable()
    t.string('created_at', 24).notNullable()
  })

  await knex.schema.createTable('roles', (t) => {
    t.string('slug', 64).primary()
    t.string('name', 200).notNullable()
  })
  await knex.schema.createTable('capabilities', (t) => {
    t.string('slug', 64).primary()
  })
  await knex.schema.createTable('role_capabilities', (t) => {
    t.string('role_slug', 64).notNullable().references('slug').inTable('roles').onDelete('CASCADE')
    t.string('capability_slug', 64).notNullable().references('slug').inTable('capabilities').onDelete('CASCADE')
    t.primary(['role_slug', 'capability_slug'])
  })
  await knex.schema.createTable('user_roles', (t) => {
    t.integer('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
    t.string('role_slug', 64).notNullable().references('slug').inTable('roles').onDelete('CASCADE')
    t.primary(['user_id', 'role_slug'])
  })

  await knex.schema.createTable('auth_tokens', (t) => {
    t.increments('id').primary()
    t.integer('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
    /** sha256 of the token; the token itself is never stored. */
    t.string('token_hash', 64).notNullable().unique()
    /** 'bearer' or 'ws_ticket' */
    t.string('kind', 16).notNullable()
    t.string('created_at', 24).notNullable()
    t.string('expires_at', 24).notNullable()
    t.string('revoked_at', 24).nullable()
    t.index(['user_id'], 'auth_tokens_user_idx')
  })

  await knex.schema.createTable('posts', (t) => {
    t.increments('id').primary()
    t.string('post_type_slug', 64).notNullable()
    t.text('title').notNullable().defaultTo('')
    t.string('slug', 191).notNullable()
    t.string('status', 32).notNullable().defaultTo('publish')
    t.string('created_at', 24).notNullable()
    t.string('updated_at', 24).notNullable()
    t.unique(['post_type_slug', 'slug'], { indexName: 'posts_type_slug_unique' })
    t.index(['post_type_slug', 'created_at'], 'posts_type_created_idx')
  })

  await knex.schema.createTable('post_meta', (t) => {
    t.increments('id').primary()
    t.integer('post_id').notNullable().references('id').inTable('posts').onDelete('CASCADE')
    t.string('meta_key', 191).notNullable()
    t.text('meta_value').nullable()
    t.unique(['post_id', 'meta_key'], { indexName: 'post_meta_post_key_unique' })
  })
  for (const key of INDEXED_META_KEYS) {
    await knex.raw(
      `CREATE INDEX post_meta_${key}_idx ON post_meta (meta_value, post_id) WHERE meta_key = '${key}'`,
    )
  }

  await knex.schema.createTable('post_authors', (t) => {
    t.integer('post_id').notNullable().references('id').inTable('posts').onDelete('CASCADE')
    t.integer('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
    t.primary(['post_id', 'user_id'])
    t.index(['user_id', 'post_id'], 'post_authors_user_idx')
  })
}

export async function down(knex: Knex): Promise<void> {
  for (const table of [
    'post_authors',
    'post_meta',
    'posts',
    'auth_tokens',
    'user_roles',
    'role_capabilities',
    'capabilities',
    'roles',
    'users',
  ]) {
    await knex.schema.dropTableIfExists(table)
  }
}
