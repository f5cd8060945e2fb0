"""Offline policy evaluation: what another configuration would have earned on the traffic we served.

``logs`` reads the decision log (DSJSON lines or the state file), ``candidates`` builds the
configurations to compare with the server's own factory, ``replay`` runs each one through the log in
order, ``estimators`` turns the replay into IPS, SNIPS and DR estimates with intervals, and ``cli``
is ``pricebandit-evaluate``.
"""
