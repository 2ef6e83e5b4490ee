"""Operator commands: `python -m app.manage create-user NAME` (password from NEW_USER_PASSWORD or a prompt).

There is no default or seeded account: production starts with no users until an operator creates one.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.models import User
from app.security import hash_password

MIN_PASSWORD_LEN = 12


async def create_user(database_url: str, username: str, password: str) -> None:
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(User).values(username=username, password_hash=hash_password(password)))
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.manage")
    sub = parser.add_subparsers(dest="cmd", required=True)
    cu = sub.add_parser("create-user", help="create a user that can log in")
    cu.add_argument("username")
    args = parser.parse_args(argv)
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        print("DATABASE_URL is required (postgresql+asyncpg://user:pw@host:5432/db)", file=sys.stderr)
        return 2
    password = os.environ.get("NEW_USER_PASSWORD") or getpass.getpass(f"password for {args.username}: ")
    if len(password) < MIN_PASSWORD_LEN:
        print(f"password must be at least {MIN_PASSWORD_LEN} characters", file=sys.stderr)
        return 2
    asyncio.run(create_user(url, args.username, password))
    print(f"created user {args.username}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
