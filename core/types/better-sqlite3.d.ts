/** The part of better-sqlite3's API the SQLite job store uses (the package ships no types). */
declare module 'better-sqlite3' {
  namespace BetterSqlite3 {
    interface RunResult {
      changes: number
      lastInsertRowid: number | bigint
    }
    interface Statement {
      readonly reader: boolean
      run(...params: unknown[]): RunResult
      get(...params: unknown[]): unknown
      all(...params: unknown[]): unknown[]
    }
    interface Database {
      readonly inTransaction: boolean
      prepare(sql: string): Statement
      exec(sql: string): this
      pragma(sql: string, options?: { simple?: boolean }): unknown
      transaction<T>(fn: () => T): () => T
    }
  }
  const BetterSqlite3: new (filename: string, options?: Record<string, unknown>) => BetterSqlite3.Database
  export = BetterSqlite3
}
