import type { Knex } from 'knex'

/**
 * Which finished (or any) job a user dismissed from their notification stack, kept on the
 * server so that every tab and device of that user agrees. Rows go with the user or the job.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('notification_dismissals', (t) => {
    t.integer('user_id').notNullable().references('id').inTable('users').onDelete('CASCADE')
    t.integer('post_id').notNullable().references('id').inTable('posts').onDelete('CASCADE')
    t.bigInteger('dismissed_at').notNullable()
    t.primary(['user_id', 'post_id'])
    t.index(['post_id'], 'notification_dismissals_post_idx')
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('notification_dismissals')
}
