"""moto's server with its DynamoDB requests serialised.

moto's DynamoDB is not safe under concurrent requests: racing conditional writes on one item
sometimes both win (see local-aws.md). Real DynamoDB never does that, and the store's contract
tests race on purpose, so every DynamoDB request here runs under one lock; SQS and S3 stay
concurrent (a long poll must not block the rest).

Usage: serial_moto.py <port>  (binds 127.0.0.1 only)
"""

import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple

_dynamodb = threading.Lock()


def serialised(app):
    def wrapper(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            with _dynamodb:
                # The body is produced inside the lock: moto does the work while iterating.
                return list(app(environ, start_response))
        return app(environ, start_response)

    return wrapper


def main():
    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", port, serialised(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
