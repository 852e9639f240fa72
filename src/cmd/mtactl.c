/*
 * mtactl.c - main() of mtactl, the operator's tool (and of mailq, the same
 * program under another name): everything is in src/ctl/
 *
 * Owns:     nothing (ctl_cmd_main() owns one command's run).
 * Lifetime: the process.
 * Errors:   exit status 0 ok, 1 usage or configuration, 2 unknown queue ID,
 *           3 mtad not running (for commands that change the queue),
 *           4 permission denied, 5 other failures (see mtactl(1)).
 * Context:  a short-lived command-line process.
 */
#include "ctl/ctl.h"

#include <signal.h>

int
main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	return ctl_cmd_main(argc, argv);
}
