"""WhatsApp through Twilio: alerts as pre-approved templates (Content API), citizen commands by WhatsApp."""
