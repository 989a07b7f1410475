"""Adobe's own UMAPI client, umapi-client 3.0.1 (PyPI), against Roster's Adobe sandbox.

Run by the sandbox's integration tests with the library on PYTHONPATH:

    python3 adobe_umapi_client.py URL ORG_ID CLIENT_ID CLIENT_SECRET

The client is used as published. The one thing given to it is its sign-in: OAuthS2S posts to
`https://{auth_host}/ims/token/v2`, and the sandbox serves plain HTTP, so the same request
goes to the sandbox's `http://.../ims/token/v2` (the client's own requests auth object still
adds the bearer token and X-Api-Key to every call). Prints a JSON summary the Rust test checks.
"""

import json
import sys

import requests
import umapi_client
from umapi_client.auth import OAuthS2S


class LocalOAuthS2S(OAuthS2S):
    """OAuthS2S whose token request goes to the sandbox over HTTP."""

    def __init__(self, url, client_id, client_secret):
        super().__init__(client_id, client_secret)
        self.url = url

    def refresh_token(self):
        r = requests.post(
            f"{self.url}/ims/token/v2",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cache-Control": "no-cache"},
            data=self.post_body(),
        )
        if r.status_code != 200:
            raise RuntimeError(f"token request failed: {r.status_code} {r.text}")
        self.set_expiry(r.json()["expires_in"])
        self.token = r.json()["access_token"]


def main(url, org_id, client_id, client_secret):
    auth = LocalOAuthS2S(url, client_id, client_secret)
    endpoint = f"{url}/v2/usermanagement"
    conn = umapi_client.Connection(org_id=org_id, auth=auth, endpoint=endpoint, max_retries=2)
    out = {}

    users = list(umapi_client.UsersQuery(conn))
    out["users"] = sorted(u["email"] for u in users)
    groups = list(umapi_client.GroupsQuery(conn))
    out["groups"] = {g["groupName"]: g["type"] for g in groups}
    production = list(umapi_client.UsersQuery(conn, in_group="Marketo Engage - Production"))
    out["production"] = sorted(u["email"] for u in production)
    grace = umapi_client.UserQuery(conn, "GRACE.HOPPER@acme.example").result()
    out["grace"] = {"email": grace["email"], "groups": grace.get("groups", [])}

    # Test mode: the client's own flag; nothing may change.
    test_conn = umapi_client.Connection(org_id=org_id, auth=auth, endpoint=endpoint, test_mode=True)
    trial = umapi_client.UserAction("new.hire@acme.example")
    trial.create(email="new.hire@acme.example", firstname="Nia", lastname="Hire", country="US", id_type="federatedID")
    trial.add_to_groups(groups=["Marketo Engage - Production"])
    out["test_mode_counts"] = list(test_conn.execute_single(trial, immediate=True))
    out["after_test_mode"] = umapi_client.UserQuery(conn, "new.hire@acme.example").result()

    # A Federated ID created and added to the product profile, for real.
    hire = umapi_client.UserAction("new.hire@acme.example")
    hire.create(email="new.hire@acme.example", firstname="Nia", lastname="Hire", country="US", id_type="federatedID")
    hire.add_to_groups(groups=["Marketo Engage - Production"])
    out["create_counts"] = list(conn.execute_single(hire, immediate=True))
    created = umapi_client.UserQuery(conn, "new.hire@acme.example").result()
    out["created"] = {"type": created["type"], "groups": created.get("groups", [])}

    # Three actions in one call; the middle one names a profile that does not exist.
    a = umapi_client.UserAction("grace.hopper@acme.example")
    a.remove_from_groups(groups=["Marketo Engage - Sandbox"])
    b = umapi_client.UserAction("alan.turing@acme.example")
    b.add_to_groups(groups=["No Such Profile"])
    c = umapi_client.UserAction("linus.torvalds@acme.example")
    c.remove_from_groups(groups=["Acrobat Pro"])
    out["batch_counts"] = list(conn.execute_multiple([a, b, c], immediate=True))
    out["batch_errors"] = [[e.get("errorCode") for e in x.execution_errors()] for x in (a, b, c)]
    grace = umapi_client.UserQuery(conn, "grace.hopper@acme.example").result()
    out["grace_after"] = grace.get("groups", [])

    # Removed from the profile, then from the organization.
    bye = umapi_client.UserAction("new.hire@acme.example")
    bye.remove_from_groups(all_groups=True)
    bye.remove_from_organization()
    out["remove_counts"] = list(conn.execute_single(bye, immediate=True))
    out["after_remove"] = umapi_client.UserQuery(conn, "new.hire@acme.example").result()
    # removeFromOrg reports success for someone who was never there.
    ghost = umapi_client.UserAction("ghost@acme.example")
    ghost.remove_from_organization()
    out["ghost_counts"] = list(conn.execute_single(ghost, immediate=True))
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:5])
