import { describePostgresOutage } from '../reliability/support/postgresOutage.js'

// A real restart of the local PostgreSQL (pg_ctlcluster), under load. Serial run only: it cuts
// every other database on the server too.
describePostgresOutage('restart', Number(process.env.SOAK_PG_RESTART_JOBS ?? 2000))
