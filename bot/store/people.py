"""`commands.ports.People` on the `person` table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.store.compliance_tables import PersonRow
from commands.ports import ERASED


class PersonDirectory:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def remember(self, slack_id: str, name: str, at: datetime) -> None:
        name = name.strip()[:256]
        if not slack_id or not name:
            return
        with Session(self.engine) as session:
            row = session.get(PersonRow, slack_id)
            if row is None:
                session.add(
                    PersonRow(slack_id=slack_id, display_name=name, first_seen=at, last_seen=at)
                )
            elif row.erased_at is not None:
                return  # erased stays erased: the name is not collected again
            else:
                if row.display_name == name:
                    return
                row.display_name, row.last_seen = name, at
                session.add(row)
            try:
                session.commit()
            except IntegrityError:  # another replica saw the same person first
                session.rollback()

    def name(self, slack_id: str) -> str | None:
        with Session(self.engine) as session:
            row = session.get(PersonRow, slack_id)
            if row is None:
                return None
            return ERASED if row.erased_at is not None else row.display_name

    def erase(self, slack_id: str, at: datetime) -> bool:
        with Session(self.engine) as session:
            row = session.get(PersonRow, slack_id)
            if row is None:
                session.add(
                    PersonRow(
                        slack_id=slack_id,
                        display_name=None,
                        first_seen=at,
                        last_seen=at,
                        erased_at=at,
                    )
                )
                session.commit()
                return False
            row.display_name, row.erased_at, row.last_seen = None, at, at
            session.add(row)
            session.commit()
            return True
