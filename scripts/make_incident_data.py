#!/usr/bin/env python3
"""Deterministic data generator for the ``incident-triage`` example suite.

Writes two JSONL files (one object per line, keys in a fixed order)::

    suites/data/incident-triage.eval.jsonl    200 rows, ids inc-e0001..
    suites/data/incident-triage.train.jsonl   600 rows, ids inc-t0001..

Each row is ``{"id", "report", "severity", "component", "summary", "source"}``.
The model reads ``report`` and must answer with severity, component and a
one-sentence summary (see ``suites/incident-triage.schema.json``).

Generation rules
----------------
* Everything comes from one ``random.Random(20261123)``; the eval split is
  generated first, then train, so two runs give byte-identical files.
* Each row is drawn from a *scenario family* (``source``, e.g.
  ``database/replication-lag``).  There are 4-6 families per component and each
  family has several severity variants.  A variant carries the impact
  statements that decide the severity, so the label is always derivable:

  - SEV1: complete outage, data loss or a security breach hitting all/most
    customers; revenue stopped.
  - SEV2: a core feature broken for many users or a large error rate, and no
    workaround.
  - SEV3: a subset of users, elevated latency, or a workaround exists.
  - SEV4: cosmetic or internal only; no customer impact.

  The component is the one that holds the *root cause*, never the one where
  symptoms surfaced.
* A report is assembled from parts (symptom, cause, impact, action, log lines,
  customer quote) and rendered in one of several styles: pager alert, Slack
  message, forwarded support ticket, formal incident ticket, one-liner,
  timeline, incident-commander update.  Noise is layered on top: hostnames,
  timestamps, request ids, error codes, numbers, occasional lowercase/typos.
* Distractors: some reports name a *bystander* component where symptoms show
  up ("gateway 502s") or that was first suspected (red herring); the cause
  sentence is then always present so the real component stays derivable.
  Some SEV3/SEV4 reports open with misleading urgency ("URGENT!!!") and a few
  SEV1/SEV2 ones are understated ("probably nothing, but").
* Numbers scale with severity (error rate, latency, disk fill, ticket counts)
  so they never contradict the impact statement.
* Balance: components are exactly even per split; severities follow
  ``SEV_SHARE`` (every severity 23-28%).  Within a (component, severity) cell
  the family is chosen uniformly among families that have that variant.
* Held-out phrasings: for every phrasing pool with 3+ entries, the last quarter
  (at least one entry) is never used for train; eval draws from the whole
  pool.  Host numbers are 01-49 in train and 50-99 in eval.  No report text
  appears in both splits (asserted), and report texts are unique per split.
* Reports longer than ``MAX_REPORT_CHARS`` are redrawn so a templated training
  example fits the demo adapter's 384-token window.

Usage::

    python3 scripts/make_incident_data.py            # (re)write suites/data
    python3 scripts/make_incident_data.py --out DIR  # write elsewhere
    python3 scripts/make_incident_data.py --check    # exit 1 if files are stale
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
from pathlib import Path

SEED = 20261123
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "suites" / "data"
SPLITS = {"eval": ("e", 200), "train": ("t", 600)}  # split -> (id letter, rows); eval first
SEVERITIES = ["SEV1", "SEV2", "SEV3", "SEV4"]
SEV_SHARE = {"SEV1": 0.23, "SEV2": 0.26, "SEV3": 0.28, "SEV4": 0.23}
# Keeps prompt + report + answer within the demo adapter's 384-token training window
# (suites/incident-triage.train.yaml); longer draws are redrawn.
MAX_REPORT_CHARS = 640
COMPONENTS = ["api-gateway", "auth", "database", "payments", "search", "storage",
              "networking", "notifications"]

# ---------------------------------------------------------------------------
# Shared noise tables.  Order matters: the tail of each list is eval-only.
# ---------------------------------------------------------------------------
REGIONS = [("eu-west-1", "EU", "Ireland"), ("us-east-1", "US East", "the US"),
           ("us-west-2", "US West", "Canada"), ("ap-southeast-2", "Australian", "Australia"),
           ("eu-central-1", "German", "Germany"), ("ap-northeast-1", "Japanese", "Japan"),
           ("sa-east-1", "Brazilian", "Brazil")]
HOSTS = {
    "database": ["db-prod-{n:02d}.{region}", "pg-main-{n:02d}.{region}.internal", "orders-db-{n:02d}.{region}"],
    "auth": ["auth-svc-{n:02d}.{region}", "auth-token-{n:02d}.prod.{region}", "idp-{n:02d}.{region}.internal"],
    "payments": ["pay-api-{n:02d}.{region}", "payments-worker-{n:02d}.{region}", "billing-{n:02d}.prod.{region}"],
    "search": ["es-data-{n:02d}.{region}", "search-api-{n:02d}.{region}", "opensearch-{n:02d}.prod.{region}"],
    "storage": ["stor-gw-{n:02d}.{region}", "objstore-{n:02d}.{region}.internal", "blob-{n:02d}.prod.{region}"],
    "networking": ["lb-ext-{n:02d}.{region}", "edge-rtr-{n:02d}.{region}", "coredns-{n:02d}.{region}.internal"],
    "api-gateway": ["gw-edge-{n:02d}.{region}", "kong-{n:02d}.prod.{region}", "apigw-{n:02d}.{region}.internal"],
    "notifications": ["notif-worker-{n:02d}.{region}", "mailer-{n:02d}.{region}", "push-svc-{n:02d}.prod.{region}"],
}
PEOPLE = ["j.alvarez", "priya.n", "tom.becker", "mwu", "sofia.r", "k.osei", "dan.h", "lena.k",
          "a.nakamura", "rbrown", "felix.m", "chen.l", "ines.g", "o.petrov", "sam.t", "yara.d"]
COMPANIES = ["Northwind Ltd", "Acme Logistics", "Brightside Health", "Kestrel Games", "Orbital Foods",
             "Fjord Analytics", "Tandem Legal", "Copperleaf Retail", "Bluebird Travel", "Quarry Labs"]
PLANS = ["Free", "Pro", "Business", "Enterprise"]

# Numbers that scale with severity so they never contradict the impact statement.
SEV_NUMBERS = {  # slot -> severity -> (lo, hi)
    "err":   {"SEV1": (92, 100), "SEV2": (22, 68), "SEV3": (2, 9), "SEV4": (0, 1)},
    "ms":    {"SEV1": (30000, 60000), "SEV2": (8000, 20000), "SEV3": (900, 3200), "SEV4": (150, 450)},
    "secs":  {"SEV1": (1800, 5400), "SEV2": (300, 1500), "SEV3": (30, 180), "SEV4": (2, 9)},
    "fill":  {"SEV1": (100, 100), "SEV2": (98, 99), "SEV3": (93, 97), "SEV4": (80, 88)},
    "count": {"SEV1": (300, 2500), "SEV2": (60, 300), "SEV3": (2, 25), "SEV4": (1, 3)},
    "mins":  {"SEV1": (10, 90), "SEV2": (15, 120), "SEV3": (3, 15), "SEV4": (1, 10)},
}


def V(summary, *impact, symptoms=None, causes=None, quotes=None, logs=None, actions=None):
    """A severity variant: impact statements (decide the label) + reference summary.

    A variant that overrides ``symptoms`` or ``causes`` describes a different
    situation than the family's main failure (a noisy alert, a typo, a narrower
    bug), so it is self-contained: its quotes/logs/actions come only from the
    variant, because the family's would contradict it.
    """
    return {"summary": summary, "impact": list(impact), "symptoms": symptoms,
            "causes": causes, "quotes": quotes, "logs": logs, "actions": actions}


def F(source, alert, by, symptoms, causes, quotes, logs, actions, **variants):
    """A scenario family.  ``by`` lists plausible bystander components."""
    return {"source": source, "component": source.split("/")[0], "alert": alert, "by": by,
            "symptoms": symptoms, "causes": causes, "quotes": quotes, "logs": logs,
            "actions": actions, "variants": variants}


# Slots: {host} {by_host} {region} {region_name} {country} {ts} {time} {rid} {pid} {err}
# {ms} {secs} {fill} {count} {p99} {mins} {num} {org}.  Literal braces are doubled.
FAMILIES = [
    # ------------------------------------------------------------------ database
    F("database/replication-lag", "PostgresReplicationLagHigh", ["api-gateway", "search"],
      ["replication lag on {host} is at {secs}s and still climbing",
       "the read replicas are serving stale data, {host} is {secs}s behind the primary",
       "replica {host} fell {secs}s behind the primary"],
      ["a long-running vacuum on the primary database is holding back WAL replay on the replicas",
       "a bulk backfill job is writing to the primary faster than the replicas can apply WAL",
       "the replica's data volume is IO-throttled so WAL apply on the database can't keep up"],
      ["I changed my shipping address and the page still shows the old one",
       "my order is in the confirmation email but not in my order history"],
      ["{ts} {host} postgres[{pid}]: WARNING:  replica apply lag {secs}s exceeds threshold",
       "{ts} {host} pg_exporter: pg_replication_lag_seconds{{instance=\"{host}\"}} {secs}"],
      ["cancelled the vacuum and failed reads over to the primary", "paused the backfill job",
       "moved the replica to a faster volume"],
      SEV1=V("Database replica lag causing stale reads and halted order processing for all customers.",
             "every customer is reading stale data, new orders vanish from accounts and order processing has halted, so revenue has stopped",
             "all reads in every region are stale and the order pipeline is stopped; the product is effectively down for everyone"),
      SEV2=V("Database replica lag serving stale account and order data to most users.",
             "account and order pages show stale data for most users ({err}% of page loads) and there's no workaround",
             "a large share of customers see missing orders and old balances, nothing they can do about it"),
      SEV3=V("Lag on one database replica delaying data updates for some {region_name} users.",
             "only {region_name} users on that replica are affected, and their data shows up after a refresh a minute later",
             "a subset of {region_name} customers see updates a few minutes late; the data is correct after a reload"),
      SEV4=V("Noisy replication lag alert on a backup replica with no customer impact.",
             "lag recovered by itself and nothing customer-facing reads from that replica, so no customer impact; the threshold is just too tight",
             symptoms=["replication lag alert fired on {host} at {secs}s during the nightly backup window",
                       "the replica lag alert for {host} keeps firing at {secs}s every night around 02:00"],
             causes=["the backup job briefly pauses replay on that replica"])),
    F("database/connection-pool-exhausted", "PgBouncerPoolSaturated", ["api-gateway", "payments", "auth"],
      ["app pods can't get a database connection, the pool on {host} is exhausted",
       "pgbouncer on {host} is at max_client_conn and queueing clients",
       "all connection slots on the primary {host} are in use"],
      ["the {time} deploy stopped releasing database connections in the ORM, so they leak until the pool is empty",
       "a batch job opened hundreds of idle-in-transaction sessions on the primary database",
       "a retry storm from the workers is holding database connections open"],
      ["the site keeps showing 'something went wrong' when I open my dashboard",
       "your API returns 500 for every second call"],
      ["{ts} {host} pgbouncer[{pid}]: WARNING no more connections allowed (max_client_conn)",
       "{ts} app-web: sqlalchemy.exc.TimeoutError: QueuePool limit of size 20 overflow 10 reached (rid={rid})"],
      ["rolled back the deploy and restarted pgbouncer", "killed the idle-in-transaction sessions",
       "rate-limited the worker retries"],
      SEV1=V("Database connection pool exhausted, taking the whole app down for all customers.",
             "every request that touches the database fails, so the whole product is down for all customers",
             "100% of API calls return 500 and no orders have gone through for {mins} minutes"),
      SEV2=V("Exhausted database connection pool causing widespread 500 errors.",
             "roughly {err}% of API requests fail with 500s and there is no workaround",
             "most users hit errors on every other page load, nothing to route around"),
      SEV3=V("Database connection pool saturation causing intermittent timeouts for a subset of requests.",
             "only the reporting endpoints use that pool, so a small set of admin users see timeouts; retrying works",
             "about {err}% of requests wait for a connection and are slow ({p99}) but succeed on retry"),
      SEV4=V("Database connection pool alert fired during a staging load test with no customer impact.",
             "it's staging only, the production pool is fine, no customer impact",
             symptoms=["the connection pool usage alert for {host} fired at 81% during the staging load test"])),
    F("database/disk-full", "DiskSpaceLow", ["storage", "api-gateway"],
      ["the data volume on {host} is {fill}% full",
       "postgres on {host} is running out of disk ({fill}% used)",
       "the WAL directory on {host} filled the disk to {fill}%"],
      ["a stuck replication slot is retaining WAL on the primary database so it is never cleaned up",
       "the audit log table in the main database grew 400GB after logging was set to verbose",
       "old database partitions never got dropped because the cleanup cron was disabled"],
      ["I click save and nothing happens, then it says try again later",
       "cannot create new projects, error 500 every time"],
      ["{ts} {host} postgres[{pid}]: PANIC:  could not write to file \"pg_wal/xlogtemp.{pid}\": No space left on device",
       "{ts} {host} node_exporter: filesystem=/var/lib/postgresql used={fill}%"],
      ["dropped the stale replication slot and grew the volume", "truncating the audit table",
       "dropping the old partitions"],
      SEV1=V("Database primary out of disk space, blocking all writes platform-wide.",
             "the primary stopped accepting writes, so nobody can sign up, save or check out anywhere",
             "all writes fail across the platform and revenue has stopped"),
      SEV2=V("Nearly full database volume causing a large share of writes to fail.",
             "about {err}% of saves error out on the main cluster and there is no workaround",
             "many users can't save changes at all; no workaround until we free space"),
      SEV3=V("Database shard low on disk causing occasional failed saves for some {region_name} users.",
             "only the {region_name} shard is affected and reads still work; users there can retry saves and they go through",
             "a handful of {region_name} accounts see an occasional failed save, a retry works"),
      SEV4=V("Disk usage warning on an internal analytics replica with no customer impact.",
             "that replica only feeds internal BI dashboards, no customer impact; can clean it up tomorrow",
             symptoms=["disk usage warning on the analytics replica {host} at {fill}%"])),
    F("database/slow-query-after-migration", "SlowQueriesHigh", ["api-gateway", "payments"],
      ["since the {time} migration the orders list query takes {ms} ms",
       "a query on the orders table went from 20ms to {ms} ms after last night's migration",
       "database CPU on {host} is pinned at 100% after migration 0{num}"],
      ["the migration dropped the index on orders(customer_id), so the database is doing sequential scans",
       "the migration changed a column type and the database planner stopped using the composite index",
       "the new migration added a trigger that runs a full table scan on every insert"],
      ["order history takes forever to load and then times out",
       "the orders API has been super slow since this morning"],
      ["{ts} {host} postgres[{pid}]: LOG:  duration: {ms} ms  statement: SELECT * FROM orders WHERE customer_id = $1",
       "Seq Scan on orders  (cost=0.00..{pid}88.00 rows=48213992 width=312)"],
      ["recreating the index concurrently", "rolling back the column type change", "dropping the new trigger"],
      SEV1=V("Post-migration missing index saturating the database and taking the site down.",
             "the database is saturated and every page that hits it times out; the site is down for everyone",
             "all customers get timeouts on every page and checkout is dead, revenue has stopped"),
      SEV2=V("Slow queries after a schema migration causing widespread timeouts on order pages.",
             "order pages time out for most users, {err}% of requests fail, no workaround",
             "checkout confirmation and order history are broken for many customers with no workaround"),
      SEV3=V("Slow order query after a migration causing elevated latency for large accounts.",
             "only customers with very large order histories see slow loads ({p99}); everything still works",
             "latency is up to {p99} for a subset of accounts, pages do load eventually"),
      SEV4=V("Internal export query slowed by a migration with no customer impact.",
             "it's an internal batch job that still finishes before 6am, no customer impact",
             symptoms=["slow query log shows the nightly internal export on {host} now takes {ms} ms"])),
    F("database/deadlocks", "PostgresDeadlocksHigh", ["payments", "api-gateway"],
      ["deadlocks on the inventory table on {host}, about {count} per minute",
       "transactions on {host} are aborting with 'deadlock detected'",
       "spike of SQLSTATE 40P01 errors from the primary database"],
      ["two services now update inventory and reservations in opposite order and deadlock each other in the database",
       "a new bulk price update job locks database rows in a different order than checkout does"],
      ["checkout says 'could not reserve item, please try again' but it's in stock",
       "I tried to buy the same thing 4 times and it failed every time"],
      ["{ts} {host} postgres[{pid}]: ERROR:  deadlock detected\nDETAIL:  Process {pid} waits for ShareLock on transaction 99{num}31; blocked by process 1{pid}."],
      ["hotfix to take row locks in a consistent order", "paused the price update job"],
      SEV1=V("Database deadlocks failing every checkout and stopping all orders.",
             "every checkout fails because the inventory reservation deadlocks, no orders are completing for anyone",
             "all customers are blocked at checkout and revenue has stopped"),
      SEV2=V("Database deadlocks causing a large share of checkouts to fail.",
             "about {err}% of checkouts fail with a reservation error and there is no workaround",
             "many customers can't complete purchases, retrying mostly fails too"),
      SEV3=V("Occasional database deadlocks causing retryable checkout errors for a few customers.",
             "a handful of customers ({count} so far) see 'please try again' at checkout and the retry succeeds",
             "a small subset of orders hit the deadlock; a second attempt goes through"),
      SEV4=V("Rare deadlocks in the internal admin tool with no customer impact.",
             "the admin tool retries automatically, no customer impact",
             symptoms=["a couple of deadlocks a day show up on {host} from the internal admin tool"])),
    # ------------------------------------------------------------------ auth
    F("auth/token-service-timeout", "AuthIntrospectLatencyHigh", ["api-gateway", "database"],
      ["token validation calls to the auth service are timing out after {p99}",
       "the auth token service on {host} answers in {p99} at p99",
       "the auth service's /introspect endpoint is timing out"],
      ["the auth token service lost its cache node, so every validation hits the backing store and it's overloaded",
       "a bad config push set the auth service's worker pool to 4 threads",
       "the auth service is stuck in long GC pauses since the latest release"],
      ["I keep getting logged out and the login spinner never finishes",
       "your API keeps returning 401 for tokens that are valid"],
      ["{ts} {host} auth-token[{pid}]: WARN introspect took {ms}ms rid={rid}",
       "{ts} {by_host} nginx: upstream timed out (110: Connection timed out) while reading response header from upstream auth-svc, request_id={rid}"],
      ["restored the token cache and scaled out the auth service", "rolled back the auth config push",
       "rolled back the auth service release"],
      SEV1=V("Auth token service timeouts blocking logins and all authenticated requests.",
             "nobody can log in and every authenticated request fails; the product is unusable for all customers",
             "100% of logins fail and revenue has stopped"),
      SEV2=V("Auth token validation timeouts causing widespread login and API failures.",
             "about {err}% of logins and API calls fail with 401/502 and there is no workaround",
             "many users can't log in at all, no workaround"),
      SEV3=V("Slow auth token validation causing elevated login latency for {region_name} users.",
             "logins are slow ({p99}) for users in {region_name} but they succeed; existing sessions are fine",
             "a subset of logins take {p99}, nothing fails"),
      SEV4=V("Flapping auth latency alert with no customer impact.",
             "p99 stayed under 300ms, the alert threshold is just wrong; no customer impact",
             symptoms=["the auth latency alert for {host} flapped three times overnight"])),
    F("auth/signing-key-rotation", "JwtVerificationFailures", ["api-gateway", "payments"],
      ["tokens signed after the key rotation are rejected with invalid_signature",
       "services are rejecting JWTs with 'kid not found in JWKS'",
       "since this morning's signing key rotation clients get 'session invalid' right after login"],
      ["the auth service rotated its signing key but its JWKS endpoint still publishes only the old key",
       "the new auth signing key went live on the issuer before the verifiers picked it up"],
      ["I log in fine and then get kicked back to the login page immediately",
       "the mobile app says 'session expired' in a loop"],
      ["{ts} {by_host} api: JWT verification failed: kid=\"k-2026-{num}\" not found in JWKS (rid={rid})",
       "{ts} {host} auth-issuer[{pid}]: rotated signing key, new kid=k-2026-{num}"],
      ["published the new key in JWKS", "rolling back the key rotation"],
      SEV1=V("Auth signing key rotation rejecting every new login session for all customers.",
             "every new login is rejected, so all customers who sign in get kicked out; effectively a full outage",
             "no one can stay logged in and revenue has stopped"),
      SEV2=V("Auth signing key rotation causing many sessions to be rejected.",
             "{err}% of sessions are rejected, mostly the mobile apps, and there's no workaround for them",
             "a large share of users are logged out on every request with no way around it"),
      SEV3=V("Auth key rotation breaking legacy v1 API clients, which can move to v2.",
             "only legacy v1 API clients (a few partner integrations) are affected; they can switch to the v2 endpoint",
             "a small subset of integrations fail auth, and re-issuing their tokens works"),
      SEV4=V("Auth key rotation job warning about a backup key with no customer impact.",
             "the active key is fine, no customer impact, it's internal housekeeping",
             symptoms=["the auth key rotation job on {host} logged a warning about an expiring backup key"])),
    F("auth/sso-saml", "SamlLoginFailures", ["api-gateway", "networking"],
      ["SAML logins fail with 'signature validation failed'",
       "SSO login through the identity provider returns 'invalid assertion'",
       "enterprise customers can't log in through SSO"],
      ["our auth service's SAML service-provider certificate expired last night",
       "an auth service release changed the SAML clock-skew tolerance to 0s, so assertions are rejected as expired"],
      ["none of our 400 employees can log in through SSO since 9am",
       "SSO says 'invalid response' and password login is disabled for our org"],
      ["{ts} {host} auth-sso[{pid}]: ERROR SAML assertion rejected: NotOnOrAfter in the past (skew=0s) org={org}",
       "{ts} {host} auth-sso[{pid}]: SP certificate CN=sso.example.com has expired"],
      ["renewed the SP certificate", "rolled back the auth-sso release"],
      SEV1=V("Expired SSO certificate locking all enterprise customers out of the product.",
             "every SSO customer is locked out, which is most of our paying customers, and nobody in those orgs can work",
             "all enterprise logins fail; most of our revenue comes through these accounts and usage is at zero"),
      SEV2=V("SSO login failures locking many enterprise users out with no workaround.",
             "most enterprise SSO logins fail ({err}%) and those orgs have password login disabled, so no workaround",
             "many enterprise users can't sign in at all and there is no fallback"),
      SEV3=V("SSO login failing for a few Azure AD orgs that can use password fallback.",
             "only orgs on Azure AD are affected (3 customers) and their admins can enable the temporary password fallback",
             "a subset of SSO tenants fail; logging in via the backup login link works"),
      SEV4=V("Typo in SSO settings help text; cosmetic only.",
             "purely cosmetic, SSO logins work fine",
             symptoms=["the SSO settings page help text says 'IdP metdata URL'"],
             quotes=["there's a typo on your SSO settings page, 'metdata'"])),
    F("auth/session-logout", "SessionRevocationsSpike", ["api-gateway", "database"],
      ["users are being logged out every few minutes",
       "sessions expire way earlier than the 30 day setting",
       "refresh tokens are being rejected as 'reused'"],
      ["the auth service's refresh-token reuse detection has a race and revokes valid sessions",
       "an auth config change set the session TTL to 300 seconds instead of 30 days"],
      ["your app logs me out every 5 minutes and I lose my work",
       "I had to log in 6 times today"],
      ["{ts} {host} auth-session[{pid}]: refresh token reuse detected, revoking family sid={rid}"],
      ["disabled reuse detection via feature flag", "reverted the TTL config"],
      SEV1=V("Auth bug revoking every session and blocking all logins.",
             "the bad revocation job invalidated every session and the re-login storm is overloading login, so nobody can get in",
             "all customers are logged out and can't get back in; revenue has stopped"),
      SEV2=V("Auth session bug repeatedly logging out most users.",
             "most users ({err}% of active sessions) are logged out repeatedly and there's no workaround",
             "a large share of customers lose their session constantly, nothing they can do"),
      SEV3=V("Early session expiry for desktop app v4.2 users; web app unaffected.",
             "only users on desktop app v4.2 are logged out early; the web app works fine",
             "a small subset of users get logged out, logging back in works",
             causes=["the auth service rejects the refresh-token format that desktop app v4.2 sends"],
             actions=["accepting the old token format in the auth service again"]),
      SEV4=V("Internal admin panel shows last-login times in UTC; cosmetic.",
             "internal-only display issue, no customer impact",
             symptoms=["the 'last login' column on the internal auth admin panel shows UTC instead of local time"])),
    F("auth/social-login", "OAuthCallbackErrors", ["api-gateway", "networking"],
      ["Sign in with Google returns redirect_uri_mismatch",
       "OAuth callbacks fail with invalid_client",
       "social login loops back to the login page"],
      ["someone removed the production redirect URI from the auth service's OAuth client config",
       "the Google OAuth client secret was rotated but the auth service still uses the old one"],
      ["Login with Google gives 'Error 400: redirect_uri_mismatch'",
       "I can't sign in with my Google account anymore"],
      ["{ts} {host} auth-oauth[{pid}]: token exchange failed: invalid_client provider=google rid={rid}"],
      ["restored the redirect URI", "updated the client secret in the vault"],
      SEV2=V("Google sign-in broken in auth, blocking many users with no fallback.",
             "all Google sign-ins fail, that's about {err}% of our logins, and those users have no password to fall back to",
             "many users can't sign in at all; no workaround"),
      SEV3=V("Apple sign-in broken on Android; email login and iOS work.",
             "only Apple sign-in on Android is broken; users can use email login or the iOS app",
             "a small subset of social logins fail, password login works for them",
             symptoms=["Sign in with Apple fails on Android with invalid_client",
                       "Apple sign-in on the Android app loops back to the login page"],
             causes=["the auth service's Apple OAuth config for Android has the wrong service id"],
             quotes=["I can't sign in with Apple on my Android phone"],
             actions=["fixing the service id in the auth OAuth config"]),
      SEV4=V("Outdated Google logo on the sign-in button; cosmetic.",
             "purely cosmetic, sign-in works",
             symptoms=["the 'Sign in with Google' button on the login page still uses the old logo"],
             quotes=["your Google login button uses the old logo, looks unprofessional"])),
    # ------------------------------------------------------------------ payments
    F("payments/processor-errors", "PaymentAuthFailureRate", ["api-gateway", "networking", "database"],
      ["payment authorizations to the processor are failing with 502s and timeouts",
       "card payments return 'processor_unavailable'",
       "charge calls from {host} to the processor are erroring"],
      ["the payments service's processor client is on an API version the processor retired today",
       "the payments service's TLS client certificate for the processor expired",
       "the processor's EU endpoint is degraded and our payments service doesn't fail over"],
      ["my card is fine but your checkout says 'payment failed' every time",
       "we tried three different cards and none go through"],
      ["{ts} {host} payments-api[{pid}]: charge failed provider=adyen http=503 rid={rid}",
       "{ts} {host} payments-api[{pid}]: ProcessorError: api_version 2023-01 is no longer supported"],
      ["pinned the processor client to the new API version", "renewed the processor client certificate",
       "failed over to the backup processor"],
      SEV1=V("Payment processor failures blocking all card payments; revenue stopped.",
             "no card payments succeed anywhere, checkout is 100% failing and revenue has stopped",
             "every customer's payment fails; we are taking no money"),
      SEV2=V("Payment processor errors failing a large share of card authorizations.",
             "{err}% of card authorizations fail and there's no workaround for card payers",
             "many customers can't pay and retries don't help"),
      SEV3=V("Amex payments failing for some {region_name} customers; other methods work.",
             "only Amex cards in {region_name} fail; customers can pay with another card or PayPal",
             "a small subset of payments fail, retrying with another method works",
             causes=["the payments service routes {region_name} Amex charges to a deprecated processor endpoint"],
             logs=["{ts} {host} payments-api[{pid}]: charge failed brand=amex route=legacy-{region} http=410 rid={rid}"],
             actions=["moving Amex routing to the current endpoint"]),
      SEV4=V("Payments dashboard shows processor latency in the wrong unit; internal only.",
             "internal dashboard only, payments are fine, no customer impact",
             symptoms=["the payments Grafana dashboard shows processor latency in seconds instead of ms"])),
    F("payments/webhook-backlog", "PaymentWebhookQueueDepth", ["notifications", "database"],
      ["payment confirmation webhooks are backed up, {count} events pending",
       "orders are stuck in 'payment pending' for {mins} minutes",
       "the payments webhook consumer on {host} is {secs}s behind"],
      ["the payments webhook consumer crashes on a malformed event and keeps restarting",
       "an autoscaler misconfig scaled the payments webhook workers to zero"],
      ["I paid but my order still says pending and I got no confirmation",
       "money left my account an hour ago, order not confirmed"],
      ["{ts} {host} payments-webhooks[{pid}]: KeyError: 'payment_intent' event=evt_{rid}",
       "{ts} {host} kubelet: payments-webhooks back-off restarting failed container"],
      ["skipping the poison event and replaying the queue", "fixed the autoscaler min replicas"],
      SEV1=V("Payment webhook backlog leaving every order unconfirmed and fulfillment stopped.",
             "no payments are being confirmed, so every order is stuck and fulfillment has stopped for all customers",
             "all orders since {time} are unconfirmed and revenue recognition has stopped"),
      SEV2=V("Payment webhook backlog leaving most orders stuck in pending.",
             "most orders ({err}%) sit in pending for over an hour and there's no workaround",
             "many customers see unconfirmed orders and are paying twice trying again"),
      SEV3=V("Payment confirmations delayed by a few minutes for some orders.",
             "confirmations are a few minutes late for some orders but they all complete",
             "a subset of orders take {mins} minutes to confirm, nothing is lost"),
      SEV4=V("Brief payment webhook queue depth alert with no customer impact.",
             "cleared in seconds, no customer impact",
             symptoms=["the webhook queue depth alert on {host} fired at 50 events for a few seconds"])),
    F("payments/duplicate-charges", "DuplicateCaptureDetected", ["database", "notifications"],
      ["customers are being charged twice for a single order",
       "duplicate captures for the same order id",
       "refund requests are spiking because of double charges"],
      ["the payments service retries captures without an idempotency key after a timeout",
       "a payments deploy dropped the idempotency check on capture"],
      ["I was charged twice for the same order!!",
       "my bank shows two identical charges from you today"],
      ["{ts} {host} payments-api[{pid}]: capture ok order=ord_{num}7 attempt=2 idempotency_key=null"],
      ["disabled capture retries", "rolled back the payments deploy and started refunds"],
      SEV1=V("Payments bug double-charging every order; checkout disabled.",
             "every order since {time} has been charged two or more times and we disabled checkout, so revenue has stopped",
             "all customers paying today were double charged; financial damage across the whole customer base"),
      SEV2=V("Payments bug double-charging a large share of orders.",
             "about {err}% of orders got a duplicate charge, {count} customers so far, no workaround",
             "many customers are being charged twice and we can't prevent it yet"),
      SEV3=V("Duplicate pending SEPA charges for a few customers that auto-void.",
             "{count} customers paying with SEPA see a duplicate pending charge that auto-voids in 24h",
             "a small subset of payments show a duplicate hold; support can void it manually"),
      SEV4=V("Internal finance dashboard double-counts some charges; customers unaffected.",
             "customer charges are correct, it's only the internal finance report",
             symptoms=["the internal finance reconciliation dashboard lists some payments twice"])),
    F("payments/refunds-stuck", "RefundsPendingHigh", ["notifications", "database"],
      ["refunds are stuck in 'processing'",
       "the refund API returns 500",
       "no refunds have settled since yesterday"],
      ["the payments refund worker lost permission to the processor's refund endpoint after a key rotation",
       "a payments migration broke the refund state machine so refunds never leave 'processing'"],
      ["I returned my order two weeks ago and still don't have my money",
       "refund shows processing forever"],
      ["{ts} {host} payments-refunds[{pid}]: 403 Forbidden from processor /refunds rid={rid}"],
      ["restored the refund API key permissions", "re-queued the stuck refunds"],
      SEV2=V("Payments refund failures leaving thousands of customers unrefunded.",
             "no refunds have gone out for two days, {count} customers waiting and no workaround",
             "every refund fails for many customers with no way to push them through"),
      SEV3=V("Partial refunds failing; support can issue full refunds manually.",
             "only partial refunds fail; support can issue full refunds manually",
             "a subset of refunds ({count}) are stuck, finance can push them through by hand",
             causes=["the payments service sends partial refund amounts in the wrong currency unit and the processor rejects them"],
             actions=["hotfix for the partial refund amount"]),
      SEV4=V("Typo on the refund confirmation page; cosmetic.",
             "cosmetic only, refunds work",
             symptoms=["the refund confirmation page says 'Your refundd is on its way'"],
             quotes=["your refund page has a typo: 'refundd'"])),
    F("payments/invoice-generation", "InvoiceJobErrors", ["storage", "notifications"],
      ["invoices are being generated with the wrong VAT amount",
       "customers report wrong tax totals on this month's invoices",
       "the monthly invoice job on {host} applied last year's VAT rates"],
      ["the payments invoicing job is using an outdated VAT rate table",
       "a payments release broke the tax rounding in invoice generation"],
      ["the VAT on my invoice is wrong, our accountant flagged it",
       "the tax on this invoice doesn't match the rate in my country"],
      ["{ts} {host} invoicer[{pid}]: TaxRateNotFound country=DE effective=2026-01-01"],
      ["re-running the invoice job with the fixed tax table", "holding invoice emails until fixed"],
      SEV2=V("Invoicing bug producing wrong VAT on most invoices this billing cycle.",
             "most invoices in this billing run ({err}%) have the wrong VAT and there's no workaround until we reissue",
             "many business customers can't use their invoices for accounting"),
      SEV3=V("Wrong VAT rounding on some {region_name} invoices; finance can reissue.",
             "a few dozen {region_name} customers got invoices with wrong rounding; finance can reissue them",
             "a small subset of invoices are off by a cent, reissuing fixes it"),
      SEV4=V("Outdated copyright year in invoice PDF footer; cosmetic.",
             "cosmetic only, amounts are correct",
             symptoms=["the invoice PDF footer still says '© 2025'"],
             quotes=["URGENT: your invoice says 2025 in the footer"])),
    # ------------------------------------------------------------------ search
    F("search/cluster-red", "ElasticsearchClusterRed", ["api-gateway", "database", "storage"],
      ["the search cluster is red with {count} shards unassigned",
       "search queries return 503 'all shards failed'",
       "Elasticsearch on {host} left the cluster"],
      ["two search data nodes ran out of heap and dropped out of the cluster",
       "a bad index template change caused a mapping explosion in the search cluster"],
      ["search shows 'no results' for everything",
       "searching for products just spins"],
      ["{ts} {host} elasticsearch[{pid}]: [WARN][o.e.c.r.a.AllocationService] cluster health status changed from [YELLOW] to [RED]",
       "{ts} {host} elasticsearch[{pid}]: java.lang.OutOfMemoryError: Java heap space"],
      ["restarted the data nodes with more heap", "reverted the index template"],
      SEV1=V("Search cluster down, breaking product discovery and stopping orders for all customers.",
             "search is down for all customers and product discovery goes through search, so orders dropped to nearly zero",
             "every search fails everywhere and revenue has stopped"),
      SEV2=V("Search cluster degradation failing a large share of searches.",
             "{err}% of searches fail and there's no workaround",
             "search is broken for many users, nothing else to use"),
      SEV3=V("Unassigned search replica shard causing slower searches for some users.",
             "one replica shard is unassigned; searches are slower ({p99}) but results are correct",
             "a subset of queries are slow, everything still works",
             symptoms=["the search cluster is yellow with one replica shard unassigned on {host}",
                       "search cluster health has been yellow since {time}"],
             causes=["a search data node restarted and its replica shard was never reassigned"],
             actions=["rerouting the replica shard"]),
      SEV4=V("Staging search cluster yellow; no customer impact.",
             "staging only, no customer impact",
             symptoms=["the staging search cluster on {host} has been yellow since the node upgrade"])),
    F("search/index-lag", "SearchIndexerLag", ["database", "notifications"],
      ["new products aren't showing up in search",
       "the search index is {secs}s behind the catalog",
       "the search indexer on {host} is falling behind"],
      ["the search indexer consumer is stuck on a poison message",
       "the search indexer lost its Kafka partition assignment after a rebalance"],
      ["I listed my item this morning and it doesn't appear in search",
       "changed my prices hours ago, search still shows old ones"],
      ["{ts} {host} search-indexer[{pid}]: failed to index doc id=prd_{num}44: mapper_parsing_exception, retrying"],
      ["skipped the poison message", "restarted the indexer consumer group"],
      SEV2=V("Search indexer stalled, so no new or updated listings are searchable.",
             "no new or updated listings have been searchable for hours, which affects most sellers; no workaround",
             "many sellers' items are invisible in search and there is no way around it"),
      SEV3=V("Search index updates delayed by minutes; items reachable via categories.",
             "updates show up about {secs}s late instead of instantly; items are reachable via category pages",
             "a subset of listings appear late, nothing is lost"),
      SEV4=V("Flapping search indexer lag alert with no customer impact.",
             "no customer impact, the threshold is too tight",
             symptoms=["the indexer lag alert on {host} flapped at {secs}s"])),
    F("search/relevance-regression", "SearchCtrDrop", ["database", "api-gateway"],
      ["search results are garbage since the ranking model deploy",
       "top results for common queries are irrelevant",
       "search click-through dropped sharply after {time}"],
      ["the new search ranking model was deployed with an empty feature-store snapshot",
       "a search config change turned off the text-match boost"],
      ["searching 'running shoes' shows me garden hoses",
       "your search is completely useless today"],
      ["{ts} {host} search-ranker[{pid}]: feature_store snapshot=empty, falling back to default scores"],
      ["rolling back the ranking model", "restored the boost config"],
      SEV2=V("Search ranking regression returning irrelevant results for most queries.",
             "most queries return irrelevant results, click-through is down {err}%, no workaround without a redeploy",
             "search is effectively broken for many users"),
      SEV3=V("Search ranking regression for Japanese-language queries only.",
             "only Japanese-language queries rank poorly, other languages are fine",
             "a subset of queries rank badly; users can still filter by category",
             causes=["the search ranking deploy shipped without the Japanese tokenizer"],
             actions=["redeploying the ranker with the tokenizer"]),
      SEV4=V("Internal search A/B dashboard shows NaN for one metric.",
             "internal dashboard only, no customer impact",
             symptoms=["the internal ranking A/B dashboard shows NaN for the NDCG metric"])),
    F("search/query-timeouts", "SearchLatencyHigh", ["api-gateway", "networking", "database"],
      ["search p99 latency is {p99}",
       "search queries are timing out",
       "search-api on {host} is queueing requests"],
      ["a wildcard query pattern from a new frontend filter is hammering the search cluster",
       "the search service's query cache was disabled in the last deploy"],
      ["search takes 20 seconds and then errors",
       "filtering products is painfully slow"],
      ["{ts} {host} search-api[{pid}]: query timed out after {ms}ms rid={rid}"],
      ["blocked the wildcard pattern", "re-enabled the query cache"],
      SEV1=V("Search timeouts taking down product listing pages for all customers.",
             "every search times out and the product listing pages depend on it, so shopping is down for everyone",
             "100% of searches fail and revenue has stopped"),
      SEV2=V("Search query timeouts failing a large share of searches.",
             "{err}% of searches time out and there's no workaround",
             "search is failing for many users"),
      SEV3=V("Slow search for multi-filter queries; simple searches fine.",
             "only searches with more than 3 filters are slow ({p99}); simple searches are fine",
             "a subset of queries are slow but they complete"),
      SEV4=V("Slow searches from the internal admin tool; no customer impact.",
             "internal tool only, no customer impact",
             symptoms=["searches from the internal admin tool on {host} take {ms}ms"])),
    F("search/autocomplete", "AutocompleteErrors", ["api-gateway"],
      ["search autocomplete returns no suggestions",
       "the suggest endpoint is returning 500",
       "typeahead suggestions are empty"],
      ["the search suggester index wasn't rebuilt after the reindex",
       "the autocomplete service points at a deleted search index alias"],
      ["the search box doesn't suggest anything anymore"],
      ["{ts} {host} search-suggest[{pid}]: index_not_found_exception [suggest-v7]"],
      ["rebuilding the suggester index", "re-pointed the alias"],
      SEV3=V("Search autocomplete broken; full search still works.",
             "autocomplete is broken but full search works, users can just press enter",
             "a minor feature is down; everyone can still search normally"),
      SEV4=V("Autocomplete dropdown misaligned by a few pixels; cosmetic.",
             "cosmetic only",
             symptoms=["the autocomplete dropdown is misaligned by a few pixels in Safari"],
             quotes=["the search suggestions box looks off in Safari"])),
    # ------------------------------------------------------------------ storage
    F("storage/upload-failures", "ObjectStorePutErrors", ["api-gateway", "networking"],
      ["PUTs to the uploads bucket fail with 503 SlowDown",
       "file uploads fail with 'upload failed, try again'",
       "the storage gateway {host} is rejecting writes"],
      ["the object storage bucket is hitting its request rate limit because all uploads share one key prefix",
       "the storage gateway's credentials to the object store expired"],
      ["I can't upload any files, it fails at 99%",
       "attachments fail to upload every time"],
      ["{ts} {host} stor-gw[{pid}]: PUT /uploads/{rid} -> 503 SlowDown",
       "{ts} {host} stor-gw[{pid}]: ExpiredToken: the security token included in the request is expired"],
      ["spreading keys across prefixes", "rotated the storage credentials"],
      SEV1=V("Object storage upload failures making the product unusable for all customers.",
             "no one can upload anything and uploads are the core of the product, so the platform is effectively down for all customers",
             "100% of uploads fail and revenue has stopped"),
      SEV2=V("Object storage errors failing a large share of file uploads.",
             "{err}% of uploads fail and there's no workaround",
             "many users can't upload files at all"),
      SEV3=V("Large file uploads failing for some users; smaller files work.",
             "only uploads over 2GB fail for some users; smaller files work and the desktop client resumes them",
             "a subset of uploads fail, retrying usually works",
             causes=["the storage gateway's multipart part limit was lowered, so very large files fail"],
             actions=["restoring the multipart limit on the storage gateway"]),
      SEV4=V("Upload progress bar shows 101%; cosmetic.",
             "cosmetic only, uploads work",
             symptoms=["the upload progress bar shows 101% right before finishing"],
             quotes=["your upload bar goes to 101% lol"])),
    F("storage/bucket-exposure", "PublicBucketDetected", ["networking"],
      ["the customer-documents bucket is publicly readable",
       "a bucket policy allows public read on customer files",
       "security scan flagged the documents bucket as public"],
      ["a terraform change applied a public-read policy to the customer-documents storage bucket"],
      ["someone sent me a link to another company's contract hosted on your domain"],
      ["{ts} {host} s3-access: GET /customer-documents/{rid}.pdf 200 requester=anonymous"],
      ["made the bucket private again and rotated the object URLs"],
      SEV1=V("Customer documents bucket publicly exposed, a data breach affecting all customers.",
             "all customer documents were publicly readable for {mins} minutes and access logs show external downloads; this is a data breach affecting every customer",
             "every customer's files were exposed to the internet, security incident declared"),
      SEV4=V("Scanner flagged a marketing assets bucket that is public by design.",
             "that bucket only holds public marketing images by design, no customer data and no customer impact",
             symptoms=["the security scanner flagged the marketing-assets bucket on {host} as public"])),
    F("storage/lifecycle-deletion", "ObjectNotFoundSpike", ["database", "api-gateway"],
      ["user files older than 30 days return 404 NoSuchKey",
       "objects are disappearing from the attachments bucket",
       "404s on attachment downloads jumped to {count} per minute"],
      ["a new lifecycle rule on the storage bucket expires objects after 30 days instead of moving them to cold storage"],
      ["files I uploaded last month are just gone",
       "old attachments show 'file not found'"],
      ["{ts} {host} objstore[{pid}]: lifecycle: expired 1{num}204 objects in bucket attachments"],
      ["disabled the lifecycle rule", "restoring from the backup bucket"],
      SEV1=V("Storage lifecycle rule permanently deleted older attachments for all customers.",
             "attachments older than 30 days are permanently lost for all customers; versioning was off",
             "data loss across the whole customer base, nothing to restore from"),
      SEV2=V("Storage lifecycle rule deleted many attachments; restore in progress.",
             "about {err}% of attachments are gone; we can restore from backup but until then customers can't open them, no workaround",
             "many customers can't open their files right now"),
      SEV3=V("Storage lifecycle rule deleted thumbnails, which regenerate on view.",
             "only thumbnails were deleted; originals are fine and thumbnails regenerate on view",
             "a subset of previews are slow the first time, nothing lost",
             symptoms=["thumbnails for older files return 404 from the storage bucket"],
             causes=["a new lifecycle rule on the storage bucket expired the thumbnails/ prefix"],
             actions=["disabled the lifecycle rule"]),
      SEV4=V("Storage lifecycle rule deleted old internal CI artifacts; no customer impact.",
             "internal build artifacts only, no customer impact",
             symptoms=["the lifecycle rule on {host} deleted old CI build artifacts earlier than expected"])),
    F("storage/volume-latency", "VolumeIOLatencyHigh", ["database", "search"],
      ["block storage volumes in {region} have {p99} write latency",
       "iowait is at 80% on {host}",
       "disk writes on the shared volumes are stalling"],
      ["the storage backend in {region} is rebalancing after a disk failure and starving volume IO",
       "a storage firmware update throttled IOPS on the shared volumes"],
      ["everything in the app is really slow today",
       "opening files takes forever"],
      ["{ts} {host} kernel: INFO: task jbd2/nvme1n1 blocked for more than 120 seconds"],
      ["paused the rebalance", "moved hot volumes to a faster tier"],
      SEV1=V("Storage IO stall freezing all stateful services, product down for everyone.",
             "all stateful services in our only region are stalled on IO; the whole product is down",
             "every customer is affected and revenue has stopped"),
      SEV2=V("Storage volume latency causing many file operations to fail.",
             "most file operations hang or fail, {err}% errors, no workaround",
             "many users can't open files"),
      SEV3=V("Elevated storage latency slowing file previews for {region_name} users.",
             "file previews are slower ({p99}) for {region_name} users; downloads work",
             "a subset of requests are slow, nothing fails"),
      SEV4=V("IO wait alert on an internal build server; no customer impact.",
             "internal build server only, no customer impact",
             symptoms=["iowait alert on the build server volume {host}"])),
    F("storage/cdn-origin", "OriginAccessDenied", ["networking", "api-gateway"],
      ["product images return 403 from the CDN",
       "user avatars and images are broken",
       "the CDN gets AccessDenied from the storage origin"],
      ["the storage bucket's origin access policy was replaced, so the CDN can no longer read objects",
       "the storage origin bucket's encryption key policy no longer allows the CDN role"],
      ["all the pictures on your site are broken",
       "my profile picture disappeared"],
      ["{ts} {host} objstore[{pid}]: GET /images/prd_{num}.jpg 403 AccessDenied principal=cdn-origin"],
      ["restored the bucket policy", "added the CDN role to the key policy"],
      SEV2=V("Storage origin policy change breaking all product images site-wide.",
             "all product images are broken site-wide for many users and there's no workaround",
             "{err}% of image requests fail, customers can't see what they're buying"),
      SEV3=V("Recently uploaded images failing from storage; older images fine.",
             "only images uploaded in the last hour return 403; older images are fine",
             "a subset of images are broken, pages still work",
             causes=["new uploads are written to the storage bucket with an encryption key the CDN role can't use"],
             actions=["re-encrypting the new objects with the shared key"]),
      SEV4=V("Broken images on the internal style guide; no customer impact.",
             "internal page only, no customer impact",
             symptoms=["images on the internal design style guide are broken"])),
    # ------------------------------------------------------------------ networking
    F("networking/dns", "DnsResolutionFailures", ["api-gateway", "auth", "database"],
      ["DNS lookups for internal services fail with SERVFAIL",
       "api.example.com is not resolving",
       "CoreDNS on {host} is dropping queries"],
      ["the DNS zone push at {time} dropped the NS delegation records",
       "CoreDNS pods are being OOM-killed under load"],
      ["your website says 'server not found'",
       "our integration can't resolve your API hostname"],
      ["{ts} {host} coredns[{pid}]: [ERROR] plugin/errors: 2 api.internal. A: read udp: i/o timeout",
       "dig api.example.com -> status: SERVFAIL"],
      ["restored the delegation records", "scaled CoreDNS and raised its memory limit"],
      SEV1=V("DNS failure making the site and API unreachable for all customers.",
             "our public domain doesn't resolve anywhere, so the site and API are unreachable for all customers",
             "complete outage, revenue has stopped"),
      SEV2=V("Intermittent DNS resolution failures causing widespread request errors.",
             "{err}% of DNS lookups fail, so many requests error and there's no workaround",
             "many users can't reach us"),
      SEV3=V("DNS resolution failing for one ISP in {region_name}; other resolvers work.",
             "only customers on one ISP in {region_name} can't resolve us; switching DNS resolver works",
             "a subset of users are affected, with a workaround",
             symptoms=["customers on one ISP in {region_name} get NXDOMAIN for our domain"],
             causes=["our DNS provider's anycast node near that ISP is serving a stale zone"],
             actions=["asked the DNS provider to flush the stale node"]),
      SEV4=V("DNS TTL alert on an internal test zone; no customer impact.",
             "internal test zone only, no customer impact",
             symptoms=["DNS TTL alert on the internal test zone served by {host}"])),
    F("networking/packet-loss", "InterAZPacketLoss", ["database", "api-gateway", "search"],
      ["{err}% packet loss between availability zones in {region}",
       "TCP retransmits spiked between zones",
       "network errors on {host} uplink"],
      ["a faulty top-of-rack switch in {region} is dropping packets",
       "the cloud provider's cross-zone network link in {region} is degraded"],
      ["the app keeps timing out randomly",
       "random errors, then it works on refresh"],
      ["{ts} {host} kernel: bond0: link status definitely down for interface eth1",
       "mtr {host} -> 10.2.3.4: Loss% {err}.0"],
      ["disabled the bad switch port", "draining the affected zone"],
      SEV1=V("Network link failure dropping all traffic; full outage.",
             "the cross-zone link is down and all traffic fails; full outage for every customer",
             "nothing works for any customer, revenue has stopped"),
      SEV2=V("Packet loss between zones causing many requests to fail.",
             "services in the affected zone time out on {err}% of calls, no workaround until we drain",
             "many users see errors"),
      SEV3=V("Packet loss in one zone causing retries and higher latency.",
             "only traffic through one zone sees retries; latency up to {p99} but requests succeed",
             "a subset of requests are slower"),
      SEV4=V("Packet loss on the office VPN link; no customer impact.",
             "office VPN only, no customer impact",
             symptoms=["smokeping shows packet loss from the office to the VPN concentrator"])),
    F("networking/load-balancer", "LBUnhealthyTargets", ["api-gateway", "auth"],
      ["the load balancer marks healthy targets as unhealthy",
       "LB health checks are flapping on the web target group",
       "{host} is returning 503 with no healthy upstreams"],
      ["a security group change blocks the load balancer's health check port",
       "the load balancer idle timeout was changed to 1s"],
      ["your site gives '503 Service Unavailable'",
       "uploads keep getting cut off"],
      ["{ts} {host} elb: target i-0{num}ab health check failed: connection refused on port 8081"],
      ["reverted the security group change", "restored the idle timeout"],
      SEV1=V("Load balancer marking all targets unhealthy, taking the site down.",
             "the LB marked all targets unhealthy and returns 503 to every request; the site is down for all customers",
             "complete outage, revenue has stopped"),
      SEV2=V("Flapping load balancer health checks causing widespread 503s.",
             "{err}% of requests get 503 as targets flap and there's no workaround",
             "many users hit errors"),
      SEV3=V("Load balancer idle timeout cutting off some long requests.",
             "only long uploads get cut off; users can retry with the resumable uploader",
             "a subset of requests fail and retries work",
             symptoms=["long uploads through the load balancer get cut off after 30s"],
             causes=["the load balancer idle timeout was lowered to 30s"],
             actions=["restoring the idle timeout"]),
      SEV4=V("Load balancer health check alert on a decommissioned target group.",
             "decommissioned target, no customer impact",
             symptoms=["health check alert on {host} for a target group we decommissioned"])),
    F("networking/firewall-change", "ConnectionRefusedSpike", ["database", "payments"],
      ["connections from the app subnet to the database subnet are refused since the firewall change",
       "traffic from the {region} VPC to shared services is being dropped",
       "services can't reach the database port since {time}"],
      ["a network ACL change at {time} removed the allow rule for port 5432",
       "the VPC peering route table was overwritten by a network terraform apply"],
      ["nothing loads", "everything errors out"],
      ["{ts} {host} vpc-flow: REJECT 10.1.4.22 -> 10.3.0.15:5432 tcp"],
      ["restored the ACL rule", "re-added the peering routes"],
      SEV1=V("Firewall change cutting all services off from the database network; full outage.",
             "every service lost connectivity to the database network, the whole product is down for everyone",
             "complete outage, revenue has stopped"),
      SEV2=V("Network ACL change breaking connectivity for many requests.",
             "{err}% of requests fail because half the app hosts can't connect; no workaround",
             "many users hit errors"),
      SEV3=V("Firewall rule change blocking one internal batch route; some reports delayed.",
             "only scheduled reports for some customers are delayed; they can export manually",
             "a subset of users are affected, with a workaround",
             symptoms=["reporting workers in {region} can't reach the warehouse subnet since the firewall change"],
             causes=["a network ACL change at {time} removed the allow rule for the reporting subnet"],
             actions=["restoring the ACL rule"]),
      SEV4=V("Firewall change blocking a staging route; no customer impact.",
             "staging only, no customer impact",
             symptoms=["the firewall change blocked the route from staging to the shared CI cache"])),
    F("networking/cdn-edge", "CdnEdge5xx", ["storage", "api-gateway"],
      ["CDN edge is returning 5xx in {region}",
       "TLS handshake failures at CDN edge POPs",
       "the CDN serves stale error pages"],
      ["the CDN provider's POP in {region} is misrouting traffic",
       "a bad CDN config rule sends traffic to the wrong origin"],
      ["the site won't load, I just get an error page",
       "pages load without styles"],
      ["{ts} cdn-logs: pop=FRA edge_status=502 origin_status=- rid={rid}"],
      ["pinned traffic away from the bad POP", "reverted the CDN rule"],
      SEV1=V("CDN edge failure making the site unreachable for all customers.",
             "every POP returns errors, the site is unreachable for all customers",
             "complete outage, revenue has stopped"),
      SEV2=V("CDN edge errors breaking page loads for many users.",
             "{err}% of page loads fail and there's no workaround",
             "many users can't load the site"),
      SEV3=V("CDN POP issue slowing the site for {region_name} users.",
             "only {region_name} users are affected, latency up to {p99}; pages load after a retry",
             "a subset of users see slow loads"),
      SEV4=V("CDN analytics dashboard lagging; no customer impact.",
             "internal dashboard only, no customer impact",
             symptoms=["the CDN analytics dashboard is 6 hours behind"])),
    # ------------------------------------------------------------------ api-gateway
    F("api-gateway/tls-cert-expired", "GatewayCertExpiry", ["networking", "auth"],
      ["clients get 'certificate has expired' on api.example.com",
       "TLS handshakes at the gateway {host} are failing",
       "the API presents an expired certificate"],
      ["the api-gateway's TLS certificate expired because its auto-renew job was broken",
       "the gateway was reloaded with an old certificate bundle"],
      ["your API gives SSL certificate expired errors",
       "browser says 'your connection is not private' on your site"],
      ["{ts} {host} kong[{pid}]: SSL_do_handshake() failed (SSL: error:0A000086:certificate verify failed)"],
      ["installed the renewed certificate on the gateway", "reloaded the gateway with the current bundle"],
      SEV1=V("Expired api-gateway certificate blocking all API and app traffic.",
             "all API and app traffic fails TLS; every customer is down and revenue has stopped",
             "complete outage for all customers"),
      SEV2=V("Expired gateway certificate breaking the mobile apps for most users.",
             "the mobile apps, which pin the certificate, fail for {err}% of users and there's no workaround",
             "many users can't use the app"),
      SEV3=V("Expired certificate on the legacy v1 API hostname; partners can use v2.",
             "only the legacy api-v1 hostname is affected; the few partners on it can switch to v2",
             "a small subset of clients are affected with a workaround",
             symptoms=["clients of api-v1.example.com get 'certificate has expired'"],
             causes=["the api-gateway certificate for the legacy api-v1 hostname was left out of auto-renew"],
             actions=["renewing the v1 certificate on the gateway"]),
      SEV4=V("Gateway certificate expires in 25 days; renewal needed, no impact.",
             "nothing is broken, just needs renewing, no customer impact",
             symptoms=["cert expiry warning: the gateway certificate on {host} expires in 25 days"])),
    F("api-gateway/rate-limit-misconfig", "Gateway429Spike", ["auth", "payments"],
      ["legit customers are getting 429 Too Many Requests",
       "the gateway is rate limiting everyone at 10 requests per minute",
       "429s from {host} spiked"],
      ["a gateway config push changed the rate limit unit from per-second to per-minute",
       "the gateway's rate-limit counters are shared across tenants after a config change"],
      ["our integration gets 429 on almost every call",
       "the app says 'too many requests' after two clicks"],
      ["{ts} {host} kong[{pid}]: rate-limiting: limit exceeded consumer=tenant_{num} limit=10/min"],
      ["reverted the rate-limit config", "split the counters per tenant"],
      SEV1=V("Gateway rate-limit misconfig rejecting nearly all requests; product unusable.",
             "virtually every request gets 429; the product is unusable for all customers",
             "complete outage, revenue has stopped"),
      SEV2=V("Gateway rate-limit misconfig throttling many legitimate requests.",
             "{err}% of requests are rejected with 429 and there's no workaround",
             "many customers are throttled"),
      SEV3=V("Gateway throttling the top few high-volume API customers.",
             "only the 5 highest-volume API customers are throttled; they can batch requests",
             "a subset of clients see 429s, backing off works",
             symptoms=["our 5 biggest API customers get 429s since the gateway config push"],
             causes=["the gateway's new per-tenant burst limit is too low for large tenants"],
             actions=["raising the burst limit for large tenants"]),
      SEV4=V("Typo in gateway rate-limit response header name; cosmetic.",
             "cosmetic, no customer impact",
             symptoms=["the gateway's rate-limit header is spelled 'X-RateLimit-Remainig'"])),
    F("api-gateway/bad-route-config", "Gateway404Spike", ["search", "payments", "notifications"],
      ["requests to /v2/orders return 404 from the gateway",
       "the gateway routes /v2/search to the wrong upstream",
       "{host} returns 404 for routes that exist"],
      ["the api-gateway route table deploy at {time} dropped the /v2 prefix",
       "a gateway config reload loaded an old routing table"],
      ["every API call returns 404 not found",
       "the app can't load my orders"],
      ["{ts} {host} kong[{pid}]: no Route matched with those values, request_id={rid}"],
      ["rolled back the route table", "reloaded the gateway with the current config"],
      SEV1=V("Bad gateway route deploy returning 404 for every API route.",
             "every API route returns 404, the product is down for all customers",
             "complete outage, revenue has stopped"),
      SEV2=V("Gateway routing misconfiguration breaking many API routes.",
             "{err}% of API calls return 404 and there's no workaround",
             "many features are broken"),
      SEV3=V("Gateway no longer routes the deprecated v1 export endpoint; v2 works.",
             "only the deprecated /v1/export endpoint returns 404; the v2 export works",
             "a small subset of clients are affected with a workaround",
             symptoms=["requests to the deprecated /v1/export endpoint return 404 from the gateway"],
             causes=["the api-gateway route table deploy at {time} dropped the legacy /v1/export route"],
             actions=["re-adding the route"]),
      SEV4=V("Internal-only gateway debug route missing; no customer impact.",
             "internal debug route only, no customer impact",
             symptoms=["the internal /debug/health route on the gateway returns 404"])),
    F("api-gateway/oom-restarts", "GatewayPodRestarts", ["auth", "database", "networking"],
      ["gateway pods are OOMKilled and restarting every few minutes",
       "intermittent 502s from the gateway as its pods restart",
       "{host} restarted {count} times in the last hour"],
      ["a memory leak in the gateway's new request-logging plugin",
       "the gateway's response buffer size was raised to 64MB per connection"],
      ["the app randomly fails with 'bad gateway'",
       "API calls fail maybe one in ten"],
      ["{ts} {host} kubelet: api-gateway-7d9f container OOMKilled (limit 2Gi)"],
      ["disabled the logging plugin", "rolled back the buffer setting"],
      SEV1=V("API gateway pods crash-looping, taking all traffic down.",
             "all gateway pods are crash-looping and nothing gets through; every customer is down",
             "complete outage, revenue has stopped"),
      SEV2=V("API gateway pod restarts causing widespread 502 errors.",
             "{err}% of requests fail with 502 and there's no workaround",
             "many users hit errors constantly"),
      SEV3=V("Occasional API gateway restarts causing retryable 502s.",
             "a small fraction of requests ({err}%) fail and succeed on retry",
             "a subset of users see an occasional error"),
      SEV4=V("API gateway memory alert on a canary pod; no customer impact.",
             "canary takes no traffic, no customer impact",
             symptoms=["memory alert on the gateway canary pod {host}"])),
    # ------------------------------------------------------------------ notifications
    F("notifications/email-provider", "EmailQueueBacklog", ["auth"],
      ["transactional emails aren't being delivered",
       "the email queue on {host} has {count} messages stuck",
       "password reset and receipt emails are not arriving"],
      ["the notifications service's email provider API key was revoked",
       "the email provider suspended our sending account after a bounce-rate spike"],
      ["I never got the password reset email",
       "no order confirmation email"],
      ["{ts} {host} mailer[{pid}]: 401 Unauthorized from provider, msg_id={rid}"],
      ["rotated the provider API key", "switched to the backup email provider"],
      SEV2=V("Email provider failure stopping all transactional emails.",
             "no transactional emails have gone out for {mins} minutes, resets and receipts are stuck, no workaround",
             "many users can't reset passwords or get receipts"),
      SEV3=V("Emails to Outlook addresses delayed; others fine.",
             "only emails to Outlook and Hotmail addresses are delayed by about {mins} minutes; others are fine",
             "a subset of emails arrive late, nothing is lost",
             causes=["Microsoft is throttling the notifications service's sending IP after a volume spike"],
             actions=["warming up a second sending IP"]),
      SEV4=V("Email provider dashboard shows stale bounce stats; internal only.",
             "internal dashboard only, no customer impact",
             symptoms=["the email provider's bounce stats dashboard is a day behind"])),
    F("notifications/push-cert", "ApnsDeliveryErrors", ["auth", "api-gateway"],
      ["iOS push notifications stopped",
       "APNs returns BadCertificate",
       "push-svc on {host} gets 403 from APNs"],
      ["the APNs certificate used by the notifications service expired",
       "the notifications service was deployed with the sandbox APNs key"],
      ["I'm not getting any notifications on my iPhone"],
      ["{ts} {host} push-svc[{pid}]: APNs 403 ExpiredProviderToken device=****{num}"],
      ["uploaded the renewed APNs certificate", "switched back to the production key"],
      SEV2=V("Expired push certificate stopping notifications for all iOS users.",
             "no iOS user gets pushes, that's {err}% of mobile users, and delivery alerts are the core feature; no workaround",
             "many users miss time-critical alerts"),
      SEV3=V("iOS push notifications failing; users still see updates in-app.",
             "iOS pushes are not arriving but users still see updates in the app",
             "a subset of notifications are missing; the inbox is correct"),
      SEV4=V("Push failing to internal test devices; no customer impact.",
             "test devices only, no customer impact",
             symptoms=["pushes to internal test devices fail on the sandbox certificate"])),
    F("notifications/sms-otp", "SmsDeliveryRateLow", ["auth"],
      ["SMS one-time codes are arriving late or not at all",
       "OTP SMS delivery rate dropped",
       "the SMS queue on {host} is backing up"],
      ["the notifications service's SMS provider account ran out of credit",
       "the SMS provider API key in the notifications service was revoked"],
      ["I never receive the login code by text"],
      ["{ts} {host} sms-sender[{pid}]: provider=twilio status=30008 undelivered to=+**{num}"],
      ["topped up the provider account", "rotated the SMS provider API key"],
      SEV1=V("SMS codes not being sent, so no customer can log in.",
             "MFA is mandatory and no SMS codes go out anywhere, so no customer can log in",
             "complete login outage for all customers"),
      SEV2=V("SMS delivery failures blocking many users with SMS MFA.",
             "most SMS codes fail ({err}%) and users with SMS MFA can't log in, no workaround",
             "many users are locked out"),
      SEV3=V("SMS codes to {country} delayed; users can use an app or voice call.",
             "only SMS codes to {country} numbers are delayed; users can use the authenticator app or a voice call",
             "a subset of users are affected, with a workaround",
             causes=["the SMS provider route for {country} is failing and the notifications service doesn't fail over"],
             actions=["failing over to the secondary SMS provider for that country"]),
      SEV4=V("Truncated SMS sender name; cosmetic.",
             "cosmetic, codes arrive",
             symptoms=["the SMS sender name shows 'EXAMPL' instead of 'EXAMPLE'"],
             quotes=["your texts come from 'EXAMPL', looks like a scam"])),
    F("notifications/template-typo", None, ["auth"],
      ["the localized password reset emails link to a 404 page",
       "the reset link in the German and French reset emails is broken",
       "password reset emails in non-English locales have a dead link"],
      ["a notifications template change broke the localized link placeholder"],
      ["the link in your password reset email goes to a page not found"],
      [],
      ["fixing the template"],
      SEV3=V("Broken reset link in non-English reset emails; website link works.",
             "the reset link is broken for users with a non-English locale; they can reset from the website",
             "a subset of users get a broken link, with a workaround"),
      SEV4=V("Typo in the welcome email template; cosmetic.",
             "cosmetic typo, no functional impact",
             symptoms=["the welcome email says 'Welcom to Exmaple'",
                       "the digest email footer says 'Unsubcribe'"],
             quotes=["your email says 'Welcom', please fix",
                     "there's a typo in your newsletter footer"])),
    F("notifications/duplicate-sends", "NotificationRedeliveries", ["payments"],
      ["customers are getting the same email 5 to 10 times",
       "push notifications are being sent repeatedly",
       "the notification queue on {host} keeps redelivering"],
      ["the notifications worker isn't acking messages so the queue redelivers them"],
      ["I got the same email 8 times"],
      ["{ts} {host} notif-worker[{pid}]: message redelivered attempt=7 msg_id={rid}"],
      ["fixed acking in the worker", "purged the queue"],
      SEV2=V("Notifications sent many times to every recipient.",
             "every customer who gets a notification gets it several times, complaints are flooding in, no workaround",
             "many users are spammed"),
      SEV3=V("Duplicate digest emails for a few hundred users.",
             "only a few hundred users got a duplicate digest",
             "a subset of users got duplicates"),
      SEV4=V("Internal ops alerts sent twice to the ops channel.",
             "internal channel only, no customer impact",
             symptoms=["internal ops alerts are posted twice to #ops"])),
    F("notifications/wrong-recipient", None, ["database", "payments"],
      ["order confirmation emails are being sent to the wrong customers",
       "customers are receiving other people's receipts"],
      ["a caching bug in the notifications service's template renderer mixes up recipient data"],
      ["I got an email with someone else's name and address"],
      ["{ts} {host} mailer[{pid}]: render cache hit key=tmpl:order_confirm (recipient mismatch)"],
      ["stopped all outbound email", "disabled the render cache"],
      SEV1=V("Notifications bug sending customers' order emails to other customers; data breach.",
             "every confirmation email since {time} went to a random other customer, leaking names, addresses and orders; a data breach across the customer base",
             "all customers affected, security incident declared"),
      SEV4=V("Internal test email sent to staff with a wrong name; no customer impact.",
             "staff-only list, no customer impact",
             symptoms=["an internal test email went to the staff list with the wrong name"])),
]

# How a bystander component shows up in a report when it is *not* the cause.
BYSTANDERS = {
    "api-gateway": ("the api-gateway", ["the api-gateway is returning 502s", "gateway 5xx rate jumped", "504s at the gateway"]),
    "auth": ("the auth service", ["some users got logged out", "auth error counts went up", "login latency looks elevated"]),
    "database": ("the database", ["database CPU spiked", "the slow query log is noisy", "db connection errors in the app logs"]),
    "payments": ("payments", ["checkout conversions dipped", "payment retries went up", "checkout is throwing errors"]),
    "search": ("search", ["search latency graphs are red", "search results look stale"]),
    "storage": ("storage", ["storage error metrics blipped", "disk alerts went off"]),
    "networking": ("the network", ["TCP retransmits are up", "DNS lookups look slow", "the CDN is showing errors"]),
    "notifications": ("notifications", ["confirmation emails aren't going out", "the notifications queue is backing up"]),
}
DOWNSTREAM = ["{sym}, but that's downstream of this, not the cause",
              "also {sym}; ignore that, it's a side effect",
              "note {sym} too, but {name} itself is healthy",
              "{sym} as a consequence; {name} is fine"]
RED_HERRING = ["we first suspected {name} because {sym}, but it checks out healthy",
               "initially looked like {name} ({sym}), ruled that out",
               "{name} was the first suspect since {sym}, but that turned out to be a consequence",
               "not {name} — {sym} only because of this"]
CAUSE_FRAMES = ["{c}", "root cause: {c}", "looks like {c}", "cause identified: {c}", "it's because {c}", "we think {c}"]
IMPACT_FRAMES = ["{i}", "impact: {i}", "customer impact: {i}", "{i}"]
GENERIC_IMPACT = {
    "SEV1": ["status page is set to major outage", "all hands on the incident bridge",
             "support got {count} tickets in {mins} minutes", "every region is affected"],
    "SEV2": ["no workaround yet", "support has {count} tickets so far", "this is hitting a big share of traffic",
             "there's no workaround for affected users"],
    "SEV3": ["most customers are unaffected", "there is a workaround", "only a small subset of accounts is affected",
             "just {count} tickets so far"],
    "SEV4": ["no customer impact", "internal only, nothing customer-facing", "no rush, can be fixed in business hours",
             "customers can't see this"],
}
SEV4_ACTIONS = ["ticket filed for next sprint", "fix queued for the next release", "assigning to the owning team",
                "will clean it up tomorrow"]
URGENT = ["URGENT!!!", "!!! CRITICAL !!!", "P0 — please look NOW:", "🚨🚨 urgent 🚨🚨", "this is really bad:",
          "is this a sev1??"]
CALM = ["probably nothing, but", "not sure this is worth a page, but", "minor thing maybe:", "low-pri question:"]
STATUSES = ["Investigating", "Mitigating", "Identified", "Monitoring"]


# ---------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------
def sent(s: str) -> str:
    """Capitalise (unless it starts with a hostname/code) and end with a period."""
    s = s.strip()
    if not s:
        return s
    if s.split(" ")[0].rstrip(":,").replace("'", "").isalpha():
        s = s[0].upper() + s[1:]
    return s if s[-1] in ".!?" else s + "."


def join(parts) -> str:
    return " ".join(sent(p) for p in parts if p)


class Gen:
    def __init__(self, rng: random.Random, split: str):
        self.r, self.split = rng, split

    def pick(self, pool):
        """Choose from a phrasing pool; train never sees the held-out tail."""
        pool = list(pool)
        if self.split == "train" and len(pool) >= 3:
            pool = pool[: len(pool) - max(1, len(pool) // 4)]
        return self.r.choice(pool)

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def context(self, comp: str, sev: str, by: str | None) -> dict:
        r = self.r
        region, region_name, country = self.pick(REGIONS)
        lo, hi = (1, 49) if self.split == "train" else (50, 99)
        host = lambda c: self.pick(HOSTS[c]).format(n=r.randint(lo, hi), region=region)
        month, day, hh, mm, ss = r.randint(1, 12), r.randint(1, 28), r.randint(0, 23), r.randint(0, 59), r.randint(0, 59)
        ts_fmt = r.choice(["2026-{mo:02d}-{d:02d}T{h:02d}:{m:02d}:{s:02d}Z", "2026-{mo:02d}-{d:02d} {h:02d}:{m:02d}:{s:02d} UTC",
                           "{mon} {d:2d} {h:02d}:{m:02d}:{s:02d}"])
        mon = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()[month - 1]
        ctx = {k: r.randint(*v[sev]) for k, v in SEV_NUMBERS.items()}
        p99 = {"SEV1": "30s (timeout)", "SEV2": f"{r.uniform(6, 20):.1f}s", "SEV3": f"{r.uniform(0.8, 3.5):.1f}s",
               "SEV4": f"{r.randint(180, 320)}ms"}[sev]
        ctx.update(
            host=host(comp), by_host=host(by or "api-gateway"), region=region, region_name=region_name,
            country=country, ts=ts_fmt.format(mo=month, d=day, h=hh, m=mm, s=ss, mon=mon),
            time=f"{hh:02d}:{mm:02d} UTC", rid=f"{r.getrandbits(64):016x}", pid=r.randint(1000, 65000),
            p99=p99, num=r.randint(100, 999), org=f"org_{r.getrandbits(24):06x}",
            name=self.pick(PEOPLE), company=self.pick(COMPANIES), plan=r.choice(PLANS),
            inc=r.randint(10000, 99999), zd=r.randint(100000, 999999),
        )
        return ctx

    def parts(self, fam: dict, sev: str) -> dict:
        """Choose the content of a report; the style decides how it is laid out."""
        v = fam["variants"][sev]
        own = v["symptoms"] is not None or v["causes"] is not None  # self-contained variant
        causes = v["causes"] if v["causes"] is not None else ([] if own else fam["causes"])
        by = None
        if sev != "SEV4" and fam["by"] and causes and self.chance(0.4):
            by = self.r.choice(fam["by"])
        ctx = self.context(fam["component"], sev, by)
        fmt = lambda s: s.format_map(ctx)
        p = {"ctx": ctx, "fam": fam, "sev": sev}
        p["symptom"] = fmt(self.pick(v["symptoms"] or fam["symptoms"]))
        # A typo or a stale dashboard is not paged by the family's alert rule.
        alerting = not v["symptoms"] or any(w in p["symptom"] for w in ("alert", "warning"))
        p["alert"] = fam["alert"] if alerting else None
        # Cause is always given when a bystander is named, so the real component stays derivable.
        # Family actions are listed in the same order as causes, so the fix matches the cause.
        ci = self.pick(range(len(causes))) if causes else None
        p["cause"] = fmt(self.pick(CAUSE_FRAMES).format(c=causes[ci])) if causes and (by or self.chance(0.8)) else ""
        p["distractor"] = p["red_herring"] = ""
        if by:
            name, syms = BYSTANDERS[by]
            d = dict(name=name, sym=fmt(self.pick(syms)))
            if self.chance(0.5):
                p["red_herring"] = self.pick(RED_HERRING).format(**d)
            else:
                p["distractor"] = self.pick(DOWNSTREAM).format(**d)
        # impact_raw goes under an "Impact:" header; impact is framed for free text.
        impact = [fmt(self.pick(v["impact"]))]
        extra = fmt(self.pick(GENERIC_IMPACT[sev]))
        if self.chance(0.5) and extra.lower() not in impact[0].lower():
            impact.append(extra)
        p["impact_raw"] = impact
        p["impact"] = [self.pick(IMPACT_FRAMES).format(i=impact[0])] + impact[1:]
        sev4_actions = (["will tune the alert threshold"] if alerting else []) + SEV4_ACTIONS
        actions = v["actions"] or (sev4_actions if sev == "SEV4" else [] if own else fam["actions"])
        assert actions, f"{fam['source']} {sev}: self-contained variant needs actions"
        p["action"] = fmt(actions[ci] if ci is not None and len(actions) == len(causes) else self.pick(actions))
        logs = v["logs"] or ([] if own else fam["logs"])
        p["logs"] = [fmt(x) for x in self.r.sample(logs, k=min(len(logs), self.r.randint(1, 2)))] if logs else []
        quotes = v["quotes"] or ([] if own else fam["quotes"])
        p["quote"] = fmt(self.pick(quotes)) if quotes else ""
        p["prefix"] = ""
        if sev in ("SEV3", "SEV4") and self.chance(0.2):
            p["prefix"] = self.pick(URGENT)
        elif sev in ("SEV1", "SEV2") and self.chance(0.07):
            p["prefix"] = self.pick(CALM)
        p["summary"] = fmt(v["summary"])
        return p


def pre(p: dict, text: str) -> str:
    """Put the (misleading) urgency/calm prefix in front of text."""
    return f"{p['prefix']} {text}" if p["prefix"] else text


def title_of(symptom: str) -> str:
    t = symptom.split(", ")[0].split("; ")[0]
    return (t[0].upper() + t[1:]) if t.split(" ")[0].isalpha() else t


def add_typo(g: Gen, text: str) -> str:
    words = text.split(" ")
    idx = [i for i, w in enumerate(words) if w.isalpha() and w.islower() and len(w) >= 5]
    if idx:
        i = g.r.choice(idx)
        w, j = words[i], g.r.randrange(1, len(words[i]) - 2)
        words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


# Each style lays the parts out the way that kind of report looks in real life.
def style_slack(g: Gen, p: dict) -> str:
    opener = g.pick(["hey team,", "@here", "heads up:", "fyi", "ok so", "", "quick flag:", "anyone around?"])
    body = join([p["symptom"], p["distractor"], p["red_herring"], p["cause"], *p["impact"], p["action"]])
    text = " ".join(x for x in [p["prefix"], opener, body] if x)
    if g.chance(0.35):  # hurried on-call style: lowercase, sometimes no punctuation either
        text = text.lower()
        if g.chance(0.5):
            text = text.replace(". ", " ").rstrip(".")
    if g.chance(0.35):
        text = add_typo(g, text)
    if p["logs"] and g.chance(0.3):
        text += "\n```\n" + "\n".join(p["logs"]) + "\n```"
    return text


def style_pager(g: Gen, p: dict) -> str:
    c, fam = p["ctx"], p["fam"]
    head = g.pick(["[PagerDuty] TRIGGERED #{inc}: {alert} on {host}", "[Datadog] Triggered: {alert} ({host})",
                   "Opsgenie Alert P{pri}: {alert} - {host}", "[FIRING:1] {alert} instance={host} job={job}"])
    lines = [head.format(inc=c["inc"], alert=p["alert"], host=c["host"], pri=g.r.randint(1, 4),
                         job=fam["component"].replace("-", "_"))]
    if g.chance(0.5):  # pager urgency is set per alert rule, it is not the incident severity
        lines.append(f"Urgency: {g.r.choice(['high', 'low'])}")
    lines += p["logs"]
    intro = g.pick(["On-call note ({name}):", "ack'd by {name}:", "{name} (on-call):", "Triage note:"]).format(**c)
    note = pre(p, join([p["symptom"] if g.chance(0.6) or p["prefix"] else "", p["distractor"],
                        p["red_herring"], p["cause"], *p["impact"], p["action"]]))
    return "\n".join(lines) + "\n\n" + intro + " " + note


def style_support(g: Gen, p: dict) -> str:
    c = p["ctx"]
    head = g.pick(["Fwd: Zendesk ticket #{zd} — {company}", "Escalation from Support (Tier 2), ticket {zd}",
                   "Support → Eng handoff | ticket #{zd} | customer: {company}",
                   "From: support-escalations@example.com\nSubject: [{plan}] customer issue #{zd}"]).format(**c)
    quote = pre(p, p["quote"])
    lines = [head, "", f'Customer ({c["company"]}, {c["plan"]} plan) writes: "{quote}"']
    eng = join([p["symptom"], p["distractor"], p["red_herring"], p["cause"], *p["impact"]])
    lines += ["", g.pick(["Eng triage ({name}): ", "Engineering note: ", "On-call ({name}) adds: "]).format(**c) + eng]
    return "\n".join(lines)


def style_ticket(g: Gen, p: dict) -> str:
    c, sev = p["ctx"], p["sev"]
    title = pre(p, title_of(p["symptom"]))
    if g.chance(0.5):
        head = [f"Ticket: INC-{c['inc']}", f"Reported-by: {c['name']}", f"Opened: {c['ts']}", f"Title: {title}"]
    else:
        head = [f"[INC-{c['inc']}] {title}", f"Reporter: {c['name']} | Opened: {c['ts']} | Status: {g.r.choice(STATUSES)}"]
    if p["prefix"] in URGENT:
        head.append("Priority (reporter): P1 - Critical")
    desc = join([p["symptom"], p["distractor"], p["red_herring"], p["cause"]])
    lines = head + ["", "Description:", desc]
    if p["logs"]:
        lines += ["", "Log excerpt:"] + ["    " + x for x in "\n".join(p["logs"]).split("\n")]
    lines += ["", "Impact: " + join(p["impact_raw"])]
    if sev in ("SEV1", "SEV2") and g.chance(0.4):
        lines.append("Workaround: none")
    lines.append("Next steps: " + sent(p["action"]))
    return "\n".join(lines)


def style_oneliner(g: Gen, p: dict) -> str:
    c, first = p["ctx"], p["impact"][0]
    form = g.pick(["{s} — {i}", "{a} on {h}: {i}", "{s}; {i}", "{s} ({i})"])
    if not p["alert"]:
        form = "{s} — {i}"
    text = form.format(s=p["symptom"], i=first, a=p["alert"], h=c["host"])
    text = sent(pre(p, text))
    if p["distractor"] or p["red_herring"]:  # keep the cause whenever a bystander is named
        text += " " + join([p["distractor"] or p["red_herring"], p["cause"]])
    return text.lower() if "{a}" not in form and g.chance(0.3) else text


def style_timeline(g: Gen, p: dict) -> str:
    c = p["ctx"]
    h, m = int(c["time"][:2]), int(c["time"][3:5])
    alert = p["alert"]
    steps = [f"{alert} fired for {c['host']}" if alert else "", pre(p, sent(p["symptom"])), p["distractor"],
             p["red_herring"], p["cause"], p["action"]]
    lines = [g.pick(["Timeline (UTC):", "Incident timeline", "Timeline so far:"])]
    for s in (s for s in steps if s):
        lines.append(f"{h:02d}:{m:02d} {sent(s)}")
        m += g.r.randint(1, 9)
        h, m = (h + m // 60) % 24, m % 60
    lines.append("Impact: " + join(p["impact_raw"]))
    return "\n".join(lines)


def style_ic_update(g: Gen, p: dict) -> str:  # eval-only style (tail of STYLES)
    c = p["ctx"]
    body = join([p["symptom"], p["red_herring"] or p["distractor"], p["cause"]])
    return (f"IC update #{g.r.randint(1, 5)} ({c['time']}): {body} Customer impact: {join(p['impact_raw'])} "
            f"Current action: {sent(p['action'])} Next update in 30 min.")


STYLES = [style_slack, style_pager, style_support, style_ticket, style_oneliner, style_timeline, style_ic_update]


def make_report(g: Gen, fam: dict, sev: str) -> tuple[str, str]:
    p = g.parts(fam, sev)
    style = g.pick(STYLES)
    # support tickets need a customer's words to forward; pager needs a monitoring alert
    while (style is style_support and not p["quote"]) or (style is style_pager and not p["alert"]):
        style = g.pick(STYLES)
    return style(g, p).strip(), p["summary"]


def plan_cells(r: random.Random, n: int) -> list[tuple[str, str]]:
    """(component, severity) per row: components exactly even, severities per SEV_SHARE.

    Severities are dealt round-robin over components (stratified), so every
    component gets close to the global severity mix; then the order is shuffled.
    """
    counts = {s: round(n * SEV_SHARE[s]) for s in SEVERITIES}
    counts["SEV3"] += n - sum(counts.values())
    sevs = [s for s in SEVERITIES for _ in range(counts[s])]
    cells = [(COMPONENTS[i % len(COMPONENTS)], sev) for i, sev in enumerate(sevs)]
    r.shuffle(cells)
    return cells


def generate() -> dict[str, list[dict]]:
    rng = random.Random(SEED)
    by_cell: dict[tuple[str, str], list[dict]] = {}
    for fam in FAMILIES:
        for sev in fam["variants"]:
            by_cell.setdefault((fam["component"], sev), []).append(fam)
    missing = [(c, s) for c in COMPONENTS for s in SEVERITIES if (c, s) not in by_cell]
    assert not missing, f"no family for {missing}"

    out, seen_all = {}, set()
    for split, (letter, n) in SPLITS.items():
        g, rows, seen = Gen(rng, split), [], set()
        for i, (comp, sev) in enumerate(plan_cells(rng, n), 1):
            fam = rng.choice(by_cell[(comp, sev)])
            for _ in range(50):  # redraw on a duplicate or over-long report
                report, summary = make_report(g, fam, sev)
                if len(report) <= MAX_REPORT_CHARS and report not in seen and report not in seen_all:
                    break
            else:
                raise RuntimeError(f"could not make a unique, short enough report for {fam['source']}")
            assert len(summary) <= 120, summary
            seen.add(report)
            rows.append({"id": f"inc-{letter}{i:04d}", "report": report, "severity": sev,
                         "component": comp, "summary": summary, "source": fam["source"]})
        seen_all |= seen
        out[split] = rows
    eval_texts = {r["report"] for r in out["eval"]}
    assert not eval_texts & {r["report"] for r in out["train"]}, "splits share report text"
    return out


def write(out_dir: Path, data: dict[str, list[dict]]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, rows in data.items():
        path = out_dir / f"incident-triage.{split}.jsonl"
        text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in rows)
        path.write_bytes(text.encode("utf-8"))
        paths.append(path)
    return paths


def print_balance(data: dict[str, list[dict]]) -> None:
    for split, rows in data.items():
        print(f"\n{split} ({len(rows)} rows)")
        print(f"{'component':<15}" + "".join(f"{s:>6}" for s in SEVERITIES) + f"{'total':>7}")
        for comp in COMPONENTS + ["total"]:
            sel = [r for r in rows if comp in ("total", r["component"])]
            cells = [sum(r["severity"] == s for r in sel) for s in SEVERITIES]
            print(f"{comp:<15}" + "".join(f"{c:>6}" for c in cells) + f"{len(sel):>7}")
        print(f"{'share':<15}" + "".join(f"{100 * sum(r['severity'] == s for r in rows) / len(rows):>5.0f}%"
                                         for s in SEVERITIES))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: suites/data)")
    ap.add_argument("--check", action="store_true", help="exit 1 if the files in --out are not up to date")
    args = ap.parse_args(argv)
    data = generate()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            stale = []
            for fresh in write(Path(tmp), data):
                committed = args.out / fresh.name
                if not committed.is_file() or committed.read_bytes() != fresh.read_bytes():
                    stale.append(str(committed))
        if stale:
            print("out of date (re-run scripts/make_incident_data.py): " + ", ".join(stale), file=sys.stderr)
            return 1
        print("incident-triage data is up to date")
        return 0
    for path in write(args.out, data):
        print(f"wrote {path} sha256={hashlib.sha256(path.read_bytes()).hexdigest()[:16]}")
    print_balance(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
