import type { Knex } from 'knex'
import type { Database, Dialect } from '../db/createDatabase.js'

/** Meta keys with a partial index `post_meta (meta_value, post_id) WHERE meta_key = …` (migrations 001, 004). */
const INDEXED_META_KEYS: ReadonlySet<string> = new Set(['status', 'type', 'source', 'completed_at', 'parent_job_id'])

/** Meta values are text; `null` in a write removes the key. */
export type MetaWrite = Record<string, string | null>

export interface PostRecord {
  id: number
  postType: string
  title: string
  slug: string
  status: string
  createdAt: string
  updatedAt: string
  /** The first author (lowest user id) from post_authors, if any. */
  authorId: number | null
  meta: Record<string, string>
}

export interface NewPost {
  postType: string
  title: string
  slug: string
  status?: string
  createdAt: string
  meta: Record<string, string>
  authorId?: number | null
}

/** A condition on one meta key, evaluated in SQL. */
export type MetaCondition =
  | { key: string; eq: string }
  | { key: string; in: readonly string[] }
  | { key: string; lt: string }
  | { key: string; lte: string }
  | { key: string; exists: boolean }

export interface PostQuery {
  postType: string
  where?: MetaCondition[]
  /** Case-insensitive substring of the title. */
  titleContains?: string
  authorId?: number
  order?: 'newest' | 'oldest'
  limit: number
  offset?: number
}

export interface PostUpdate {
  meta?: MetaWrite
  title?: string
  /** Written only when every condition holds; otherwise nothing changes and `null` is returned. */
  expect?: MetaCondition[]
  updatedAt: string
}

const IN_CHUNK = 500

/**
 * The posts + meta store: the only place that knows knex and the SQL dialect. Registries and the
 * runtime call it with plain values. A store is bound to an executor: the database, or one open
 * transaction (see `transaction`).
 */
export class PostStore {
  readonly dialect: Dialect

  constructor(
    readonly db: Database,
    private readonly executor: Knex | Knex.Transaction = db.knex,
    private readonly inTransaction = false,
  ) {
    this.dialect = db.dialect
  }

  /** The knex executor, for the operation modules in core/store/ only. */
  get sql(): Knex | Knex.Transaction {
    return this.executor
  }

  /** Runs `work` with a store bound to one write transaction; re-entrant (no nested savepoints). */
  async transaction<T>(work: (store: PostStore) => Promise<T>): Promise<T> {
    if (this.inTransaction) return work(this)
    return this.db.transaction((trx) => work(new PostStore(this.db, trx, true)))
  }

  async createPost(post: NewPost): Promise<number> {
    const [id] = await this.createPosts([post])
    return id!
  }

  /** Inserts posts with all their meta and authors in one transaction; returns ids in order. */
  async createPosts(posts: NewPost[]): Promise<number[]> {
    if (posts.length === 0) return []
    return this.transaction(async (store) => {
      const k = store.executor
      const ids: number[] = []
      const row = (post: NewPost) => ({
        post_type_slug: post.postType,
        title: post.title,
        slug: post.slug,
        status: post.status ?? 'publish',
        created_at: post.createdAt,
        updated_at: post.createdAt,
      })
      if (posts.length === 1) {
        ids.push(extractId((await k('posts').insert(row(posts[0]!)).returning('id'))[0]))
      } else {
        // Many posts: one multi-row INSERT per chunk, then the ids read back by the unique
        // (post_type_slug, slug), which pairs ids with posts exactly on both dialects.
        for (let i = 0; i < posts.length; i += IN_CHUNK) {
          const chunk = posts.slice(i, i + IN_CHUNK)
          await k('posts').insert(chunk.map(row))
          const idOf = new Map<string, number>()
          for (const postType of new Set(chunk.map((post) => post.postType))) {
            const slugs = chunk.filter((post) => post.postType === postType).map((post) => post.slug)
            const found = await k('posts').select('id', 'slug').where('post_type_slug', postType).whereIn('slug', slugs)
            for (const { id, slug } of found as { id: number; slug: string }[]) idOf.set(`${postType}\n${slug}`, Number(id))
          }
          for (const post of chunk) ids.push(idOf.get(`${post.postType}\n${post.slug}`)!)
        }
      }
      const metaRows = posts.flatMap((post, index) =>
        Object.entries(post.meta).map(([meta_key, meta_value]) => ({ post_id: ids[index], meta_key, meta_value })),
      )
      for (let i = 0; i < metaRows.length; i += IN_CHUNK) {
        await k('post_meta').insert(metaRows.slice(i, i + IN_CHUNK))
      }
      const authorRows = posts.flatMap((post, index) =>
        post.authorId != null ? [{ post_id: ids[index], user_id: post.authorId }] : [],
      )
      for (let i = 0; i < authorRows.length; i += IN_CHUNK) {
        await k('post_authors').insert(authorRows.slice(i, i + IN_CHUNK))
      }
      return ids
    })
  }

  /** Reads posts with all their meta in one query, in the order of `ids`. */
  async getPosts(ids: readonly number[]): Promise<PostRecord[]> {
    if (ids.length === 0) return []
    const byId = new Map<number, PostRecord>()
    for (let i = 0; i < ids.length; i += IN_CHUNK) {
      const chunk = ids.slice(i, i + IN_CHUNK)
      // Two narrow queries (the posts, then their meta rows) rather than one join that repeats
      // every post column, and the author subquery, on each of its ~17 meta rows.
      const posts = await this.executor
        .select(
          'p.id',
          'p.post_type_slug',
          'p.title',
          'p.slug',
          'p.status',
          'p.created_at',
          'p.updated_at',
          this.executor.raw('(SELECT MIN(a.user_id) FROM post_authors a WHERE a.post_id = p.id) AS author_id'),
        )
        .from('posts as p')
        .whereIn('p.id', chunk)
      if (posts.length === 0) continue
      for (const row of posts) {
        byId.set(Number(row.id), {
          id: Number(row.id),
          postType: row.post_type_slug,
          title: row.title,
          slug: row.slug,
          status: row.status,
          createdAt: row.created_at,
          updatedAt: row.updated_at,
          authorId: row.author_id == null ? null : Number(row.author_id),
          meta: {},
        })
      }
      const metaRows = await this.executor('post_meta')
        .select('post_id', 'meta_key', 'meta_value')
        .whereIn('post_id', chunk)
      for (const row of metaRows as { post_id: number; meta_key: string; meta_value: string | null }[]) {
        const post = byId.get(Number(row.post_id))
        if (post && row.meta_value != null) post.meta[row.meta_key] = row.meta_value
      }
    }
    return ids.flatMap((id) => byId.get(id) ?? [])
  }

  async getPost(id: number): Promise<PostRecord | null> {
    const [post] = await this.getPosts([id])
    return post ?? null
  }

  async findPostId(postType: string, slug: string): Promise<number | null> {
    const row = await this.executor('posts').select('id').where({ post_type_slug: postType, slug }).first()
    return row ? Number(row.id) : null
  }

  async getPostBySlug(postType: string, slug: string): Promise<PostRecord | null> {
    const id = await this.findPostId(postType, slug)
    return id == null ? null : this.getPost(id)
  }

  /** Filters in SQL, then pages; returns the page's ids and the total number of matches. */
  async queryPostIds(query: PostQuery): Promise<{ ids: number[]; total: number }> {
    const base = this.filteredPosts(query)
    const [countRow] = await base.clone().clearSelect().count<{ n: number | string }[]>({ n: '*' })
    const rows = await base
      .clone()
      .select('p.id')
      .orderBy('p.id', query.order === 'oldest' ? 'asc' : 'desc')
      .limit(query.limit)
      .offset(query.offset ?? 0)
    return { ids: rows.map((row: { id: number }) => Number(row.id)), total: Number(countRow?.n ?? 0) }
  }

  /** Ids of posts matching `query` (no total), for batch work such as cleanup. */
  async findPostIds(query: PostQuery): Promise<number[]> {
    const rows = await this.filteredPosts(query)
      .select('p.id')
      .orderBy('p.id', query.order === 'newest' ? 'desc' : 'asc')
      .limit(query.limit)
      .offset(query.offset ?? 0)
    return rows.map((row: { id: number }) => Number(row.id))
  }

  /**
   * Writes meta keys (and optionally the title) of one post atomically. With `expect`, the write
   * happens only if every condition holds at that moment (the post row is locked first on
   * PostgreSQL; SQLite write transactions are serial). Returns the post as written, or null.
   */
  async updatePost(postId: number, update: PostUpdate): Promise<PostRecord | null> {
    return this.transaction(async (store) => {
      const k = store.executor
      if (store.dialect === 'postgres') {
        const locked = await k('posts').select('id').where('id', postId).forUpdate().first()
        if (!locked) return null
      }
      if (update.expect?.length) {
        const matches = await store.filteredPosts({ postType: '', where: update.expect, limit: 1 }, false)
          .where('p.id', postId)
          .select('p.id')
          .first()
        if (!matches) return null
      }
      const touched = await k('posts')
        .where('id', postId)
        .update({ updated_at: update.updatedAt, ...(update.title !== undefined ? { title: update.title } : {}) })
      if (!touched) return null
      await store.writeMeta(postId, update.meta ?? {})
      return store.getPost(postId)
    })
  }

  private async writeMeta(postId: number, meta: MetaWrite): Promise<void> {
    const entries = Object.entries(meta)
    const upserts = entries.filter(([, value]) => value !== null)
    const deletes = entries.filter(([, value]) => value === null).map(([key]) => key)
    if (upserts.length) {
      await this.executor('post_meta')
        .insert(upserts.map(([meta_key, meta_value]) => ({ post_id: postId, meta_key, meta_value })))
        .onConflict(['post_id', 'meta_key'])
        .merge(['meta_value'])
    }
    if (deletes.length) {
      await this.executor('post_meta').where('post_id', postId).whereIn('meta_key', deletes).delete()
    }
  }

  /** Writes meta of many posts at once (bulk upsert + one delete); for the runtime's batches. */
  async writeMetaMany(updates: { postId: number; meta: MetaWrite }[], updatedAt: string): Promise<void> {
    if (updates.length === 0) return
    const upserts = updates.flatMap(({ postId, meta }) =>
      Object.entries(meta).flatMap(([meta_key, meta_value]) => (meta_value === null ? [] : [{ post_id: postId, meta_key, meta_value }])),
    )
    const deletes = updates.flatMap(({ postId, meta }) =>
      Object.entries(meta).flatMap(([key, value]) => (value === null ? [[postId, key] as const] : [])),
    )
    await this.transaction(async (store) => {
      const k = store.executor
      for (let i = 0; i < upserts.length; i += IN_CHUNK) {
        await k('post_meta').insert(upserts.slice(i, i + IN_CHUNK)).onConflict(['post_id', 'meta_key']).merge(['meta_value'])
      }
      // Posts that drop the same set of keys (the usual case in a batch) share one DELETE.
      const keysByPost = new Map<number, string[]>()
      for (const [postId, key] of deletes) keysByPost.set(postId, [...(keysByPost.get(postId) ?? []), key])
      const byKeySet = new Map<string, { keys: string[]; postIds: number[] }>()
      for (const [postId, keys] of keysByPost) {
        const signature = [...keys].sort().join('\n')
        const group = byKeySet.get(signature) ?? { keys, postIds: [] }
        group.postIds.push(postId)
        byKeySet.set(signature, group)
      }
      for (const { keys, postIds } of byKeySet.values()) {
        for (let i = 0; i < postIds.length; i += IN_CHUNK) {
          await k('post_meta').whereIn('post_id', postIds.slice(i, i + IN_CHUNK)).whereIn('meta_key', keys).delete()
        }
      }
      const ids = updates.map((update) => update.postId)
      for (let i = 0; i < ids.length; i += IN_CHUNK) {
        await k('posts').whereIn('id', ids.slice(i, i + IN_CHUNK)).update({ updated_at: updatedAt })
      }
    })
  }

  /**
   * Posts of `postType` whose meta `parentKey` holds the slug of a `parentType` post that no longer
   * exists (children left behind by a bulk delete), oldest first; for sweeping them in batches.
   */
  async findOrphanPostIds(options: { postType: string; parentKey: string; parentType: string; limit: number }): Promise<number[]> {
    const k = this.executor
    const rows = await k('posts as p')
      .join('post_meta as m', (join) => join.on('m.post_id', 'p.id').andOnVal('m.meta_key', options.parentKey))
      .where('p.post_type_slug', options.postType)
      .whereNotExists(k('posts as q').select(k.raw('1')).where('q.post_type_slug', options.parentType).whereRaw('q.slug = m.meta_value'))
      .select('p.id')
      .orderBy('p.id', 'asc')
      .limit(options.limit)
    return rows.map((row: { id: number }) => Number(row.id))
  }

  /** Deletes posts (meta and authors go with them by cascade). Returns how many were deleted. */
  async deletePosts(ids: readonly number[]): Promise<number> {
    let deleted = 0
    for (let i = 0; i < ids.length; i += IN_CHUNK) {
      deleted += await this.executor('posts').whereIn('id', ids.slice(i, i + IN_CHUNK)).delete()
    }
    return deleted
  }

  /** Deletes one post only while `expect` holds; returns whether it was deleted. */
  async deletePostIf(postId: number, expect: MetaCondition[]): Promise<boolean> {
    return this.transaction(async (store) => {
      if (store.dialect === 'postgres') await store.executor('posts').select('id').where('id', postId).forUpdate()
      const matches = await store.filteredPosts({ postType: '', where: expect, limit: 1 }, false)
        .where('p.id', postId)
        .select('p.id')
        .first()
      if (!matches) return false
      return (await store.deletePosts([postId])) === 1
    })
  }

  /** The database's current time in ms since the epoch (the reference clock across instances). */
  async databaseNow(): Promise<number> {
    if (this.dialect === 'postgres') {
      const result = await this.executor.raw('SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint AS now')
      return Number(result.rows[0].now)
    }
    const [row] = await this.executor.raw("SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) AS now")
    return Number(row.now)
  }

  private filteredPosts(query: PostQuery, byType = true): Knex.QueryBuilder {
    const k = this.executor
    const builder = k.from('posts as p')
    if (byType) {
      // With a condition on a meta key that has a partial index, that index must drive the query
      // (a status has few rows; a post type has them all). SQLite may start from
      // posts_type_created_idx and scan every job instead, so there the post type is checked as an
      // expression (`+col`, which no index serves). A key without an index (a schedule's
      // next_run_at, an instance's last_seen) must not: SQLite then scanned every post, a million
      // jobs each second for the schedule tick (0.5 s of the event loop). PostgreSQL weighs both.
      const metaDriven = (query.where ?? []).some((condition) => !('exists' in condition) && INDEXED_META_KEYS.has(condition.key))
      if (metaDriven && this.dialect === 'sqlite') builder.whereRaw('+p.post_type_slug = ?', [query.postType])
      else builder.where('p.post_type_slug', query.postType)
    }
    ;(query.where ?? []).forEach((condition, index) => {
      const alias = `c${index}`
      if ('exists' in condition) {
        const sub = k('post_meta as e')
          .select(k.raw('1'))
          .whereRaw('e.post_id = p.id')
          .andWhere(keyIs(k, 'e', condition.key))
        if (condition.exists) builder.whereExists(sub)
        else builder.whereNotExists(sub)
        return
      }
      builder.join(`post_meta as ${alias}`, (join) => {
        join.on(`${alias}.post_id`, 'p.id').andOn(keyIs(k, alias, condition.key))
      })
      const column = `${alias}.meta_value`
      if ('eq' in condition) builder.where(column, condition.eq)
      else if ('in' in condition) builder.whereIn(column, [...condition.in])
      else if ('lt' in condition) builder.where(column, '<', condition.lt)
      else builder.where(column, '<=', condition.lte)
    })
    if (query.titleContains) {
      const pattern = `%${query.titleContains.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`
      builder.whereRaw("LOWER(p.title) LIKE ? ESCAPE '\\'", [pattern])
    }
    if (query.authorId != null) {
      builder.whereExists(
        k('post_authors as a').select(k.raw('1')).whereRaw('a.post_id = p.id').andWhere('a.user_id', query.authorId),
      )
    }
    return builder
  }
}

const META_KEY = /^[A-Za-z0-9_]{1,64}$/

/**
 * `alias.meta_key = 'key'` with the key as a literal, not a parameter: only then can SQLite (and
 * PostgreSQL's generic plans) see that the query implies a partial index's `WHERE meta_key = 'key'`.
 * Keys come from code, and are checked to be plain identifiers.
 */
function keyIs(k: Knex | Knex.Transaction, alias: string, key: string): Knex.Raw {
  if (!META_KEY.test(key)) throw new Error(`Invalid meta key ${JSON.stringify(key)}.`)
  return k.raw(`${alias}.meta_key = '${key}'`)
}

function extractId(row: unknown): number {
  if (typeof row === 'number') return row
  if (row && typeof row === 'object' && 'id' in row) return Number((row as { id: unknown }).id)
  throw new Error('INSERT did not return an id.')
}
