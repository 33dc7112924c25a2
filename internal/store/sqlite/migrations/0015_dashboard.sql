-- The admin dashboard reads one site at a time: its latest sessions
-- (newest first, a few), and its mails counted by state and the latest
-- few. Without these it would read every session and every mail of every
-- site on each view. Sessions and mails are written once per sign-in or
-- mail, so the indexes cost the request path nothing. The audit trail gets
-- none: the dashboard bounds its audit reads by time (audit_time), and an
-- index more on the trail would be paid by every request.
CREATE INDEX sessions_site_created ON sessions (site, created_at);
CREATE INDEX outbox_site_state ON outbox (site, state);
CREATE INDEX outbox_site_created ON outbox (site, created_at);
