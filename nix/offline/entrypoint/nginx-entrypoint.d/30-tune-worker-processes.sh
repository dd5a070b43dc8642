# armorred built-in step: 30-tune-worker-processes.sh
# /docker-entrypoint.sh (a program: the image has no shell) does this
# official step itself when it meets this file in /docker-entrypoint.d; the
# file marks the step's place in the order among your own scripts.
