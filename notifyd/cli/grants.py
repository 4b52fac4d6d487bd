"""``notifyd accounts`` and ``notifyd oauth``: the provider's users, and the BIM-bots clients
and tokens they granted."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from notifyd.bots.accounts import AccountError, check_password, hash_password
from notifyd.cli.common import config_option, with_storage
from notifyd.config import Settings
from notifyd.grants import Account
from notifyd.services import Registry
from notifyd.storage import Storage, accounts_of, grants_of
from notifyd.user_accounts import UserAccounts


@click.group()
def accounts() -> None:
    """The provider's users, whom BIM-bots grants and jobs belong to."""


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@accounts.command("add")
@config_option
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def accounts_add(config_path: Path | None, name: str, password_stdin: bool) -> None:
    """Create an account NAME (the password is asked for)."""
    password = _password(password_stdin)

    async def add(storage: Storage, settings: Settings) -> str:
        try:
            created = await _user_accounts(storage, settings).create(
                name=name, password=password, by_provider=True
            )
        except AccountError as exc:
            raise click.ClickException(exc.message) from exc
        return created.name

    click.echo(f"account {with_storage(config_path, add)} created")


def _user_accounts(storage: Storage, settings: Settings) -> UserAccounts:
    """The accounts' rules for a command (no services: a command serves none)."""
    return UserAccounts(
        grants=grants_of(storage),
        store=accounts_of(storage),
        registry=Registry(),
        settings=settings,
    )


@accounts.command("password")
@config_option
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def accounts_password(config_path: Path | None, name: str, password_stdin: bool) -> None:
    """Set the password of account NAME."""
    try:
        hashed = hash_password(check_password(_password(password_stdin)))
    except AccountError as exc:
        raise click.ClickException(exc.message) from exc

    async def change(storage: Storage, _settings: Settings) -> bool:
        return await grants_of(storage).set_password(name, hashed)

    if not with_storage(config_path, change):
        raise click.ClickException(f"no account named {name!r}")
    click.echo(f"password of {name} changed")


async def _account_by_email(storage: Storage, email: str) -> Account:
    found = await accounts_of(storage).account_by_email(email.strip().lower())
    if found is None:
        raise click.ClickException(f"no account with the e-mail {email!r}")
    return found


@accounts.command("credit")
@config_option
@click.argument("email")
@click.argument("amount", type=int)
@click.option("--note", default="top-up from the command line", help="Kept in the ledger.")
def accounts_credit(config_path: Path | None, email: str, amount: int, note: str) -> None:
    """Add AMOUNT credits to the account with EMAIL (negative to correct a mistake)."""
    if amount == 0:
        raise click.ClickException("the amount must not be 0")

    async def credit(storage: Storage, _settings: Settings) -> tuple[str, int]:
        account = await _account_by_email(storage, email)
        balance = await accounts_of(storage).credit(account.name, amount, note, time.time())
        return account.name, balance

    name, balance = with_storage(config_path, credit)
    click.echo(f"{name}: {amount:+d} credits, balance {balance}")


@accounts.command("add-admin")
@config_option
@click.argument("email")
def accounts_add_admin(config_path: Path | None, email: str) -> None:
    """Make the account with EMAIL an administrator (the /admin pages)."""

    async def promote(storage: Storage, _settings: Settings) -> str:
        account = await _account_by_email(storage, email)
        await accounts_of(storage).set_admin(account.name, True)
        return account.name

    click.echo(f"{with_storage(config_path, promote)} is an administrator")


@accounts.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def accounts_list(config_path: Path | None, as_json: bool) -> None:
    """Every account with its e-mail, role and balance."""

    async def read(storage: Storage, _settings: Settings) -> list[tuple[Account, int]]:
        return await accounts_of(storage).accounts()

    rows = with_storage(config_path, read)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {"name": a.name, "email": a.email, "is_admin": a.is_admin, "balance": b}
                    for a, b in rows
                ],
                indent=2,
            )
        )
        return
    for account, balance in rows:
        role = "admin" if account.is_admin else "user"
        click.echo(f"{account.name:24} {account.email or '-':32} {role:6} {balance:>8}")


@click.group()
def oauth() -> None:
    """The BIM-bots clients registered here, and the tokens they hold."""


@oauth.command("clients")
@config_option
def oauth_clients(config_path: Path | None) -> None:
    """List the registered clients as JSON lines."""

    async def listing(storage: Storage, _settings: Settings) -> None:
        for client in await grants_of(storage).clients():
            registered = datetime.fromtimestamp(client.registered_at, UTC)
            click.echo(
                json.dumps(
                    {
                        "clientId": client.client_id,
                        "name": client.name,
                        "style": str(client.style),
                        "redirectUris": list(client.redirect_uris),
                        "registeredAt": registered.isoformat(timespec="seconds"),
                    }
                )
            )

    with_storage(config_path, listing)


@oauth.command("revoke")
@config_option
@click.option("--client", "client_id", help="Revoke every token of this client id.")
@click.option("--account", help="Revoke every token granted by this account.")
def oauth_revoke(config_path: Path | None, client_id: str | None, account: str | None) -> None:
    """Revoke tokens: of a client, of an account, or of an account for one client."""
    if client_id is None and account is None:
        raise click.UsageError("name --client, --account, or both")

    async def revoke(storage: Storage, _settings: Settings) -> int:
        return await grants_of(storage).revoke(client_id=client_id, account=account)

    count = with_storage(config_path, revoke)
    click.echo(f"{count} tokens revoked")


@click.group()
def platforms() -> None:
    """Platforms that share a secret with this provider (signed tokens and requests)."""


@platforms.command("add")
@config_option
@click.argument("name")
def platforms_add(config_path: Path | None, name: str) -> None:
    """Register platform NAME and print its secret (shown only now: give it to the platform).
    It then signs its requests to <public_url>/platforms/NAME/json."""

    async def add(storage: Storage, settings: Settings) -> str:
        try:
            return await _user_accounts(storage, settings).add_platform(name)
        except AccountError as exc:
            raise click.ClickException(exc.message) from exc

    click.echo(with_storage(config_path, add))


@platforms.command("list")
@config_option
def platforms_list(config_path: Path | None) -> None:
    """The registered platforms (never their secrets)."""

    async def read(storage: Storage, _settings: Settings) -> list[tuple[str, float]]:
        return await accounts_of(storage).platforms()

    for name, created in with_storage(config_path, read):
        click.echo(f"{name:24} added {datetime.fromtimestamp(created, UTC):%Y-%m-%d %H:%M} UTC")
