"""AS2 (RFC 4130) with trading partners: an endpoint that receives (`webhook: {as2: ...}`) and
the ``as2`` step that sends, both over pyas2lib (install flowrunner[as2]).

``partners`` reads a partner connection into pyas2lib's objects, ``receive`` is the endpoint,
``step`` the sending step, ``pending`` the messages still waiting for an asynchronous MDN.
"""
