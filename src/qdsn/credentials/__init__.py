"""Digital certificates: SD-JWT VCs, token status lists, and the quality certificate."""
