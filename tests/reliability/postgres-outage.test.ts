import { describePostgresOutage } from './support/postgresOutage.js'

// The real `pg_ctlcluster restart` disrupts every database on the server, so it runs in the
// serial soak run (tests/soak/postgres-restart.soak.test.ts); here only this file's connections die.
describePostgresOutage('terminate')
