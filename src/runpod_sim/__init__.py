"""A local RunPod: a stateful fake cloud whose pods are real OpenSSH servers on loopback.

It shares no code with the tool; it speaks only RunPod's wire protocols (GraphQL, REST, the
runpodctl command line, SSH), so a misunderstanding of those protocols cannot cancel itself out.
"""
