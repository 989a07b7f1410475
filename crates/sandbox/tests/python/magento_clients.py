"""Two real Magento client libraries, written by others, against Roster's Magento sandbox.

Run by the sandbox's integration tests with one library on PYTHONPATH at a time (both
install a package named `magento`):

    python3 magento_clients.py pymagento|my-magento URL USERNAME PASSWORD

Each logs in with the admin account, pages through every customer, reads one customer, and
prints a JSON summary on stdout that the Rust test checks.
"""

import json
import sys
import urllib.request


def admin_token(url, username, password):
    request = urllib.request.Request(
        f"{url}/rest/V1/integration/admin/token",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def with_pymagento(url, username, password):
    from magento import Magento  # pymagento

    client = Magento(token=admin_token(url, username, password), base_url=url, scope="all", batch_page_size=7)
    customers = list(client.get_customers())
    first = client.get_customer(customers[0]["id"])
    return {"customers": len(customers), "ids": sorted(c["id"] for c in customers), "first_email": first["email"]}


def with_my_magento(url, username, password):
    from magento import Client  # my-magento

    domain = url.split("://", 1)[1]
    # A user agent is given, or my-magento fetches one from the internet. Its domain parser
    # drops the port, so the base URL is set before logging in.
    api = Client(domain, username, password, local=True, log_level="WARNING", scope="all",
                 user_agent="roster-sandbox-test", login=False)
    api.BASE_URL = f"{url}/rest/V1/"
    api.authenticate()
    found = api.customers.add_criteria("website_id", "0", condition="gt").execute()
    found = found if isinstance(found, list) else [found]
    first = api.customers.by_id(found[0].id)
    return {"customers": len(found), "ids": sorted(c.id for c in found), "first_email": first.email}


def main():
    library, url, username, password = sys.argv[1:5]
    run = {"pymagento": with_pymagento, "my-magento": with_my_magento}[library]
    print(json.dumps(run(url, username, password)))


if __name__ == "__main__":
    main()
