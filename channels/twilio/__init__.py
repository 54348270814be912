"""Twilio plumbing shared by the SMS and WhatsApp channels: the SDK's HTTP clients, error map, concurrent sends."""
