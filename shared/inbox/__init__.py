"""The clinician inbox's domain: the alert projection and tenancy (pure), its database (one small
repository layer over SQLite or PostgreSQL) and its user accounts.

Used by ``services/inbox`` (the web app and its consumer) and by ``rapport inbox users`` (the CLI);
neither imports the other. Nothing here touches Kafka or HTTP.
"""
