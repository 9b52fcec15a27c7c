"""Who is asking and what they may do: principals, credentials (bearer, Basic, cookie, share token),
the one access policy, password hashing and the bearer secrets Lightbox issues."""
