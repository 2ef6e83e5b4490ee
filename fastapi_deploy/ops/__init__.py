"""Operations helpers behind `infra doctor` (preflight) and `infra verify` (post-deploy).

Each module talks to one boundary (AWS APIs, GCP APIs, SSH, HTTP) through a real client passed in or
built from the user's credentials, and turns what the platform says into findings a user can act on.
"""
