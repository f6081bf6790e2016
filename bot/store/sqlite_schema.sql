-- heads: 0015
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
CREATE TABLE audit_event (
	id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	actor_id VARCHAR(64) NOT NULL, 
	action VARCHAR(64) NOT NULL, 
	environment VARCHAR(32), 
	target VARCHAR(128), 
	parameters JSON NOT NULL, 
	justification VARCHAR, 
	outcome TEXT NOT NULL, 
	change_id VARCHAR(32), 
	request_id VARCHAR(64), 
	retain_until DATETIME, 
	prev_hash VARCHAR(64) NOT NULL, 
	hash VARCHAR(64) NOT NULL, chain_version INTEGER DEFAULT '1' NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (hash)
);
CREATE INDEX ix_audit_actor_at ON audit_event (actor_id, at);
CREATE INDEX ix_audit_at ON audit_event (at);
CREATE INDEX ix_audit_change ON audit_event (change_id);
CREATE INDEX ix_audit_target_at ON audit_event (target, at);
CREATE TABLE change (
	seq INTEGER NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	endpoint VARCHAR(128) NOT NULL, 
	environment VARCHAR(32) NOT NULL, 
	requester_id VARCHAR(32) NOT NULL, 
	state VARCHAR(24) NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME, 
	reason VARCHAR, 
	version VARCHAR(128), 
	canary_percent INTEGER, 
	split_before JSON NOT NULL, 
	split_after JSON NOT NULL, 
	restore_split JSON NOT NULL, 
	expires_at DATETIME, 
	operation VARCHAR, 
	new_deployed_model_id VARCHAR, 
	decided_by VARCHAR(32), 
	decided_at DATETIME, 
	error VARCHAR, 
	channel VARCHAR(32), 
	message_ts VARCHAR(32), 
	extra JSON NOT NULL, lease_owner VARCHAR(96), lease_heartbeat_at DATETIME, lease_expires_at DATETIME, stop_requested_by VARCHAR(32), stop_reason TEXT, 
	PRIMARY KEY (seq)
);
CREATE INDEX ix_change_endpoint_state ON change (endpoint, state);
CREATE INDEX ix_change_state ON change (state);
CREATE TABLE sandbox_endpoint (
	slug VARCHAR(128) NOT NULL, 
	traffic JSON NOT NULL, 
	next_id INTEGER NOT NULL, 
	PRIMARY KEY (slug)
);
CREATE TABLE sandbox_operation (
	name VARCHAR(128) NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	endpoint VARCHAR(128) NOT NULL, 
	started_at DATETIME NOT NULL, 
	finishes_at DATETIME NOT NULL, 
	payload JSON NOT NULL, 
	done BOOLEAN NOT NULL, 
	error VARCHAR, 
	deployed_model_id VARCHAR, 
	PRIMARY KEY (name)
);
CREATE TABLE approval (
	id INTEGER NOT NULL, 
	change_seq INTEGER NOT NULL, 
	approver_id VARCHAR(32) NOT NULL, 
	decision VARCHAR(16) NOT NULL, 
	at DATETIME NOT NULL, 
	reason VARCHAR, 
	plan_hash VARCHAR(64), 
	PRIMARY KEY (id), 
	FOREIGN KEY(change_seq) REFERENCES change (seq), 
	CONSTRAINT uq_approval_once UNIQUE (change_seq, approver_id)
);
CREATE INDEX ix_approval_change_seq ON approval (change_seq);
CREATE TABLE endpoint_lock (
	endpoint VARCHAR(128) NOT NULL, 
	change_seq INTEGER NOT NULL, 
	taken_at DATETIME NOT NULL, 
	PRIMARY KEY (endpoint), 
	FOREIGN KEY(change_seq) REFERENCES change (seq)
);
CREATE TABLE sandbox_deployed_model (
	id VARCHAR(32) NOT NULL, 
	endpoint VARCHAR NOT NULL, 
	model VARCHAR(128) NOT NULL, 
	version VARCHAR(64) NOT NULL, 
	replicas INTEGER NOT NULL, 
	deployed_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(endpoint) REFERENCES sandbox_endpoint (slug)
);
CREATE INDEX ix_sandbox_deployed_model_endpoint ON sandbox_deployed_model (endpoint);
CREATE TABLE scheduler_run (
	job VARCHAR(128) NOT NULL, 
	scheduled_for DATETIME NOT NULL, 
	claimed_by VARCHAR(64) NOT NULL, 
	claimed_at DATETIME NOT NULL, 
	late BOOLEAN NOT NULL, 
	outcome VARCHAR(300), 
	finished_at DATETIME, 
	PRIMARY KEY (job, scheduled_for)
);
CREATE INDEX ix_scheduler_run_claimed_at ON scheduler_run (claimed_at);
CREATE TABLE apscheduler_jobs (
	id VARCHAR(191) NOT NULL, 
	next_run_time FLOAT, 
	job_state BLOB NOT NULL, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_apscheduler_jobs_next_run_time ON apscheduler_jobs (next_run_time);
CREATE TABLE audit_checkpoint (
	id INTEGER NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	last_id INTEGER NOT NULL, 
	last_hash VARCHAR(64) NOT NULL, 
	rows INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	audit_id INTEGER, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_audit_checkpoint_kind_id ON audit_checkpoint (kind, id);
CREATE TABLE person (
	slack_id VARCHAR(32) NOT NULL, 
	display_name VARCHAR(256), 
	first_seen DATETIME NOT NULL, 
	last_seen DATETIME NOT NULL, 
	erased_at DATETIME, 
	PRIMARY KEY (slack_id)
);
CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: UPDATE refused'); END;
CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
    WHEN OLD.retain_until IS NULL OR OLD.retain_until >= strftime('%Y-%m-%d %H:%M:%f', 'now')
    BEGIN SELECT RAISE(ABORT, 'audit_event is append-only: DELETE refused (within retention)');
    END;
CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint
    BEGIN SELECT RAISE(ABORT, 'audit_checkpoint is append-only: UPDATE refused'); END;
CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE ON audit_checkpoint
    BEGIN SELECT RAISE(ABORT, 'audit_checkpoint is append-only: DELETE refused'); END;
CREATE TABLE canary_watch (
	id INTEGER NOT NULL, 
	endpoint VARCHAR(128) NOT NULL, 
	environment VARCHAR(32) NOT NULL, 
	change_id VARCHAR(32) NOT NULL, 
	canary_id VARCHAR(64) NOT NULL, 
	stable_id VARCHAR(64) NOT NULL, 
	canary_version VARCHAR(64) NOT NULL, 
	stable_version VARCHAR(64) NOT NULL, 
	state VARCHAR(24) NOT NULL, 
	started_at DATETIME NOT NULL, 
	next_check_at DATETIME NOT NULL, 
	checks INTEGER NOT NULL, 
	consecutive_breaches INTEGER NOT NULL, 
	last_verdict VARCHAR(24), 
	steps JSON NOT NULL, 
	step_index INTEGER NOT NULL, 
	plan_change_id VARCHAR(32), 
	action VARCHAR(16), 
	action_key VARCHAR(64), 
	action_change_id VARCHAR(32), 
	decision_channel VARCHAR(32), 
	decision_ts VARCHAR(32), 
	note VARCHAR, 
	rev INTEGER NOT NULL, 
	updated_at DATETIME, evidence JSON, share_since DATETIME, 
	PRIMARY KEY (id), 
	UNIQUE (change_id)
);
CREATE INDEX ix_canary_watch_endpoint ON canary_watch (endpoint);
CREATE INDEX ix_canary_watch_state ON canary_watch (state);
CREATE TABLE canary_check (
	id INTEGER NOT NULL, 
	watch_id INTEGER NOT NULL, 
	seq INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	window_seconds INTEGER NOT NULL, 
	source VARCHAR(32) NOT NULL, 
	canary_share INTEGER NOT NULL, 
	verdict VARCHAR(24) NOT NULL, 
	consecutive_breaches INTEGER NOT NULL, 
	figures JSON NOT NULL, 
	reasons JSON NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(watch_id) REFERENCES canary_watch (id), 
	CONSTRAINT uq_canary_check_once UNIQUE (watch_id, seq)
);
CREATE INDEX ix_canary_check_watch_id ON canary_check (watch_id);
CREATE TABLE sandbox_clock (
	name VARCHAR(32) NOT NULL, 
	offset_seconds FLOAT NOT NULL, 
	PRIMARY KEY (name)
);
CREATE TABLE alert (
	seq INTEGER NOT NULL, 
	"key" VARCHAR(255) NOT NULL, 
	source VARCHAR(32) NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	policy TEXT NOT NULL, 
	condition TEXT NOT NULL, 
	started_at DATETIME, 
	ended_at DATETIME, 
	endpoint VARCHAR(128), 
	environment VARCHAR(32), 
	summary TEXT NOT NULL, 
	observed TEXT NOT NULL, 
	url TEXT, 
	documentation TEXT NOT NULL, 
	labels JSON NOT NULL, 
	received_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	closed_at DATETIME, 
	channel VARCHAR(32), 
	message_ts VARCHAR(32), 
	acknowledged_by VARCHAR(32), 
	acknowledged_at DATETIME, 
	incident_id VARCHAR(32), 
	rev INTEGER NOT NULL, paged_at DATETIME, posting_by VARCHAR(128), posting_until DATETIME, 
	PRIMARY KEY (seq), 
	UNIQUE ("key")
);
CREATE INDEX ix_alert_endpoint_received ON alert (endpoint, received_at);
CREATE INDEX ix_alert_state ON alert (state);
CREATE TABLE incident (
	seq INTEGER NOT NULL, 
	severity VARCHAR(4) NOT NULL, 
	state VARCHAR(16) NOT NULL, 
	summary TEXT NOT NULL, 
	declared_by VARCHAR(32) NOT NULL, 
	declared_at DATETIME NOT NULL, 
	endpoint VARCHAR(128), 
	environment VARCHAR(32), 
	commander VARCHAR(32), 
	on_call VARCHAR(32), 
	suggested_severity VARCHAR(4), 
	alert_id VARCHAR(32), 
	detected_at DATETIME, 
	acknowledged_at DATETIME, 
	mitigated_at DATETIME, 
	resolved_at DATETIME, 
	root_cause TEXT, 
	channel VARCHAR(32), 
	thread_ts VARCHAR(32), 
	runbook TEXT, 
	paged_at DATETIME, 
	rev INTEGER NOT NULL, 
	PRIMARY KEY (seq), 
	UNIQUE (alert_id)
);
CREATE INDEX ix_incident_declared_at ON incident (declared_at);
CREATE INDEX ix_incident_endpoint_state ON incident (endpoint, state);
CREATE INDEX ix_incident_state ON incident (state);
CREATE TABLE handoff (
	id INTEGER NOT NULL, 
	author VARCHAR(32) NOT NULL, 
	at DATETIME NOT NULL, 
	text TEXT NOT NULL, 
	environment VARCHAR(32), 
	PRIMARY KEY (id)
);
CREATE INDEX ix_handoff_at ON handoff (at);
CREATE TABLE health_watch (
	endpoint VARCHAR(128) NOT NULL, 
	state JSON NOT NULL, 
	window_end DATETIME, 
	updated_at DATETIME NOT NULL, 
	rev INTEGER NOT NULL, 
	PRIMARY KEY (endpoint)
);
CREATE INDEX ix_audit_action_at ON audit_event (action, at);
