"""Every table, imported in one place so Alembic and tests see the whole schema."""

from broadcast.alerts.models import Alert, AlertArea, AlertInfo, PublicStateVersion
from broadcast.audit.models import AuditEntry
from broadcast.db import Base
from broadcast.dispatch.models import Delivery, OutboxMessage, PendingEnqueue
from broadcast.partners.models import PartnerDelivery, PartnerWebhook
from broadcast.reports.models import Incident, PollCheckpoint, Report
from broadcast.subscribers.models import Subscriber
from broadcast.trust.models import HoaxClarification, HoaxReport, ReplyContact, TrustReply
from broadcast.users.models import User

__all__ = [
    "Alert",
    "AlertArea",
    "AlertInfo",
    "AuditEntry",
    "Base",
    "Delivery",
    "HoaxClarification",
    "HoaxReport",
    "Incident",
    "OutboxMessage",
    "PartnerDelivery",
    "PartnerWebhook",
    "PendingEnqueue",
    "PollCheckpoint",
    "PublicStateVersion",
    "ReplyContact",
    "Report",
    "Subscriber",
    "TrustReply",
    "User",
]
