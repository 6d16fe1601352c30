"""The ISSTAD model: the pure-torch network and its parts, the losses, the anomalib module and its stage switch."""
