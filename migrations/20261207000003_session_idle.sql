-- Sessions: an idle timeout beside the absolute one. `last_seen_at` is when the session was
-- last used, to within the server's touch interval (at most a minute: it is not written on every
-- request); a session unused for longer than `session_idle_secs` is refused and deleted.
ALTER TABLE sessions ADD COLUMN last_seen_at timestamptz NOT NULL DEFAULT now();
