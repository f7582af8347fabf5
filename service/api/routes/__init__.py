"""One router per resource; each route: parse the request -> one service call -> the response."""
