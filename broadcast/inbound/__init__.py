"""Citizen commands from any channel (SMS, Telegram, …): one table from command kind to its domain's handler."""
