"""Dashboard users and their browser sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from leadflow.adapters.db.tables import sales_reps, users, web_sessions
from leadflow.services.users import Role, User


def _user(row: Any) -> User:
    return User(
        row.id, row.email, row.name, Role(row.role), row.rep_id, bool(row.active),
        row.created_at, row.last_login_at,
    )  # fmt: skip


class SqlUserRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(
        self, email: str, name: str, password_hash: str, role: str, rep_id: int | None,
        now: datetime,
    ) -> int:  # fmt: skip
        values = {
            "email": email, "name": name, "password_hash": password_hash, "role": str(role),
            "rep_id": rep_id, "active": True, "created_at": now,
        }  # fmt: skip
        return int(self.conn.scalar(insert(users).values(values).returning(users.c.id)) or 0)

    def by_email(self, email: str) -> tuple[User, str] | None:
        row = self.conn.execute(select(users).where(users.c.email == email)).first()
        return (_user(row), row.password_hash) if row else None

    def by_id(self, user_id: int) -> User | None:
        row = self.conn.execute(select(users).where(users.c.id == user_id)).first()
        return _user(row) if row else None

    def all(self) -> list[User]:
        return [_user(row) for row in self.conn.execute(select(users).order_by(users.c.email))]

    def update(self, user_id: int, **values: Any) -> None:
        self.conn.execute(update(users).where(users.c.id == user_id).values(**values))

    def rep_id(self, name: str) -> int | None:
        found = self.conn.scalar(select(sales_reps.c.id).where(sales_reps.c.name == name))
        return int(found) if found is not None else None

    def rep_name(self, rep_id: int) -> str | None:
        return self.conn.scalar(select(sales_reps.c.name).where(sales_reps.c.id == rep_id))

    def open_session(
        self, key: str, user_id: int, csrf: str, now: datetime, expires_at: datetime
    ) -> None:
        self.conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now))
        self.conn.execute(
            insert(web_sessions).values(
                id=key, user_id=user_id, csrf=csrf, created_at=now, expires_at=expires_at
            )
        )

    def session(self, key: str, now: datetime) -> tuple[User, str, datetime] | None:
        query = (
            select(users, web_sessions.c.csrf, web_sessions.c.expires_at.label("expires"))
            .join(web_sessions, web_sessions.c.user_id == users.c.id)
            .where(web_sessions.c.id == key, web_sessions.c.expires_at > now)
        )
        row = self.conn.execute(query).first()
        return (_user(row), row.csrf, row.expires) if row else None

    def close_session(self, key: str) -> None:
        self.conn.execute(delete(web_sessions).where(web_sessions.c.id == key))

    def close_sessions(self, user_id: int) -> None:
        self.conn.execute(delete(web_sessions).where(web_sessions.c.user_id == user_id))
