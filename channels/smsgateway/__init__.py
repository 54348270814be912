"""SMS through a local SIM gateway (SMS Gateway for Android): inbound SMS where Twilio cannot receive, replies and
small outbound volumes within the phone's limits."""
