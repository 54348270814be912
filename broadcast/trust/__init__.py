"""Trust and transparency: verification codes, /cek, signed CAP, hoax intake, replies to reporters, open data."""
