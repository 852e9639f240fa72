/*
 * ctl.h - the operator's commands (public interface of src/ctl/): mtactl,
 *         mailq, and the parts of sendmail that are mailq and flush
 *
 * Owns:     nothing beyond one command's run: its configuration, its
 *           connection to mtad and what it read are released before return.
 * Lifetime: ctl_cmd_main() runs one command line to completion.
 * Errors:   a command's exit status (CTL_EX_*), with the reason on stderr.
 * Context:  a short-lived command-line process, never the daemon: blocking
 *           I/O with deadlines is fine here.
 */
#ifndef MTAD_CTL_H
#define MTAD_CTL_H

/* Exit statuses of mtactl (documented in mtactl(1)). */
#define CTL_EX_OK        0   /* done */
#define CTL_EX_USAGE     1   /* bad command line or configuration */
#define CTL_EX_NOTFOUND  2   /* an unknown queue ID (the others were done) */
#define CTL_EX_NODAEMON  3   /* mtad is not running / its API is unreachable */
#define CTL_EX_PERM      4   /* permission denied (file or HTTP 401/403) */
#define CTL_EX_FAIL      5   /* anything else: I/O error, unexpected reply */

#define CTL_DEFAULT_CONFIG "/etc/mtad/mtad.conf"

/*
 * ctl_cmd_main - run one mtactl command line. Called as "mailq" (the basename
 * of argv[0]) it lists the queue like "mtactl queue". Returns the exit status.
 */
int ctl_cmd_main(int argc, char **argv);

/* ctl_cmd_config_path - the configuration to read: opt if given, else $MTAD_CONFIG, else the default */
const char *ctl_cmd_config_path(const char *opt);

#endif
