"""The notifications service: emails to users over SMTP, and what became of them.

A notification is queued by a domain event (``welcome`` on
``user.registered``, ``program_assigned`` on ``program.assigned``,
``certificate_issued`` on ``certificate.issued``) or by an admin
(``POST /api/v1/notifications``, e.g. an ``announcement``). It is rendered at
once for its recipient, stored, and queued on the ``campus:notifications``
stream through the schema's outbox; a sender on some replica sends it.

States, and what the API shows of them:

=========  ==========  ===================================================
state      API status  meaning
=========  ==========  ===================================================
queued     queued      waiting for its first attempt
sending    queued      a sender has claimed an attempt and is making it
retrying   queued      the last attempt failed transiently; another is due
sent       sent        the SMTP server accepted it (``sent_at``)
failed     failed      a permanent failure (5xx, unusable address), the
                       attempts used up, no answer from the SMTP server once
                       the whole email was sent, or a sender vanished mid-send
                       (``failed_reason``)
=========  ==========  ===================================================

Transitions: queued -> sending; sending -> sent | retrying | failed;
retrying -> sending. Once the whole email has gone to the SMTP server, an
attempt whose outcome is unknown is never retried (at most once): when the
server's answer does not come (``mailer``), or when the worker making the
attempt vanished before recording its outcome, the notification fails with a
reason saying the email may have been delivered. Every transition but
``sending`` adds a history entry ``{at, status, attempt, detail}``;
``docs/events.md`` tells what a client sees of each case.
"""

# The Postgres schema this service owns. Here rather than in ``migrate`` so
# that the running service does not import Alembic and SQLAlchemy.
SCHEMA = "notifications"
