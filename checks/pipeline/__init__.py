"""The one check pipeline: a Trial per case (cached stages), properties as functions Trial -> Findings,
and the Runner that explores them with hypothesis."""
