-- The admin dashboard's indexes: see the SQLite store's 0015_dashboard.sql.
CREATE INDEX sessions_site_created ON sessions (site, created_at);
CREATE INDEX outbox_site_state ON outbox (site, state);
CREATE INDEX outbox_site_created ON outbox (site, created_at);
