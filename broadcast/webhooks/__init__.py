"""Provider webhooks: Twilio delivery status callbacks and inbound SMS (citizen commands and reports)."""
