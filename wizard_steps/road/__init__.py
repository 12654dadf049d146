"""The road as a whole: the user's choices (state and answers files), the prerequisites, opening
a model whichever way it was made, and the unattended run of every step."""
