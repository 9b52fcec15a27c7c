"""Who is asking: principals and (later) users, keys and ownership policy."""
