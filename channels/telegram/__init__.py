"""Telegram: alerts posted to the agency's channel and sent by the bot to subscribers (python-telegram-bot)."""
