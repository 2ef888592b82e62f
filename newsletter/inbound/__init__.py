"""Inbound mail: bounces, complaints and mailto unsubscribes, and what they change.

classify.py (what a message is), match.py (which delivery it is about), process.py (one
message start to end, through the store's bounce policy), imap.py (`inbound fetch`),
lmtp.py (`inbound receive`).
"""
