"""Check builders every domain uses (symbol coverage, row-rule violations counted in SQL).

They sit below the domains: a domain's `checks.py` imports from here, and nothing here imports a
domain, so monitoring (which watches every domain) is never imported upward.
"""
