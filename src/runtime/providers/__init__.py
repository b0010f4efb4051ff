"""Pod providers: the runpodctl command and the RunPod API, behind one protocol."""
