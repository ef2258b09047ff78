"""The reference voicemail process: answers calls only while told it is active.

`core` holds the rules (role, epoch, calls in progress), `store` the reference's data
layout and message database, `lineproto` the TCP call front end and `control` the HTTP
port the agent drives. A SIP front end can be added beside `lineproto` against `core`.
"""
