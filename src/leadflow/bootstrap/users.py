"""Dashboard users: who may sign in, with which role, and their browser sessions."""

from __future__ import annotations

from leadflow.adapters.db.users import SqlUserRepository
from leadflow.bootstrap.reports import Reports
from leadflow.services import users as user_service
from leadflow.services.users import Session, User


class Users(Reports):
    """Users of the dashboard (docs/dashboard.md)."""

    def add_user(
        self, email: str, password: str, role: str, name: str = "", rep: str | None = None
    ) -> User:
        """A new user; ``rep`` links a sales user to the sales rep whose queue they work."""
        if rep:
            self.sales_reps()  # the config's reps, in the store before the link
        with self.transaction() as conn:
            return user_service.add_user(
                SqlUserRepository(conn), email, password, role, name, rep, self.clock.now()
            )

    def users(self) -> list[User]:
        with self.engine.connect() as conn:
            return SqlUserRepository(conn).all()

    def user(self, email: str) -> User:
        with self.engine.connect() as conn:
            return user_service.user_by_email(SqlUserRepository(conn), email)

    def set_user_password(self, email: str, password: str) -> User:
        """A new password; every session of the user ends."""
        hashed = user_service.hash_password(password)
        with self.transaction() as conn:
            repo = SqlUserRepository(conn)
            found = user_service.user_by_email(repo, email)
            repo.update(found.id, password_hash=hashed)
            repo.close_sessions(found.id)
            return found

    def set_user_active(self, email: str, active: bool) -> User:
        """Enable or disable a user; disabling ends every session of theirs."""
        with self.transaction() as conn:
            repo = SqlUserRepository(conn)
            found = user_service.user_by_email(repo, email)
            repo.update(found.id, active=active)
            if not active:
                repo.close_sessions(found.id)
            refreshed = repo.by_id(found.id)
            assert refreshed is not None
            return refreshed

    def user_rep(self, user: User) -> str | None:
        """The name of the sales rep a user works as, if any."""
        if user.rep_id is None:
            return None
        with self.engine.connect() as conn:
            return SqlUserRepository(conn).rep_name(user.rep_id)

    def sign_in(self, email: str, password: str) -> Session:
        with self.transaction() as conn:
            return user_service.sign_in(SqlUserRepository(conn), email, password, self.clock.now())

    def web_session(self, token: str) -> Session | None:
        with self.engine.connect() as conn:
            return user_service.session_of(SqlUserRepository(conn), token, self.clock.now())

    def sign_out(self, token: str) -> None:
        with self.transaction() as conn:
            SqlUserRepository(conn).close_session(user_service.session_key(token))
