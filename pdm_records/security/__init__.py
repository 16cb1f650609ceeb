"""Sign-in security glue around Flask-Security-Too: two-factor, lock-out, sessions, password
policy and security events. Business rules live in services (``services/auth.py``); these
modules adapt them to Flask-Security's hooks and commit where a hook ends a request step."""
