"""Python's gql client against a running gateway, sending the SDK's whole operation document
(schema/graphql/operations/shop.graphql) with an operation name, as an application that keeps
its operations in one file does.

Usage: python gql_client.py <gateway base URL> <access token> <id of one of the caller's orders>
Prints one JSON line: per operation, its answer or its error; exits 1 if any failed.
"""

import json
import pathlib
import sys

from gql import Client, gql
from gql.transport.requests import RequestsHTTPTransport

base, token, order_id = sys.argv[1:4]
document = gql(
    (pathlib.Path(__file__).parent / "../../schema/graphql/operations/shop.graphql").read_text()
)
client = Client(
    transport=RequestsHTTPTransport(
        url=f"{base}/graphql", headers={"Authorization": f"Bearer {token}"}, retries=0
    )
)

calls = {
    "Me": {},
    "GetOrder": {"id": order_id},
    "OrdersByUser": {"userId": "1", "first": 2},
    "UserName": {"id": "2"},
    "Products": {"first": 2},
}
report = {"ok": True, "answers": {}}
for name, variables in calls.items():
    try:
        report["answers"][name] = client.execute(
            document, variable_values=variables, operation_name=name
        )
    except Exception as error:  # every failure is reported, whatever the library raised
        report["ok"] = False
        report["answers"][name] = {"error": f"{type(error).__name__}: {error}"}
print(json.dumps(report))
sys.exit(0 if report["ok"] else 1)
