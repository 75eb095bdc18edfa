"""The HTTP surface for people and programs: credentials on every route, login and CSRF,
pages, security headers, and the OpenAPI document fuzzed."""
