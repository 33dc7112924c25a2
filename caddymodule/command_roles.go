package caddymodule

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/latchkeyhq/latchkey/internal/ops"
)

// rolesCommand is `caddy latchkey roles …`: the roles of each site and who
// holds them. The admin API has the same operations (internal/ops).
func rolesCommand() *cobra.Command {
	roles := &cobra.Command{Use: "roles", Short: "Creates, lists, grants and takes roles (per site)"}
	create := &cobra.Command{
		Use:   "create <name> [--site <site>] [--description <text>]",
		Short: "Creates a role on a site",
		Args:  cobra.ExactArgs(1),
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, args []string) error {
			site, _ := c.Flags().GetString("site")
			desc, _ := c.Flags().GetString("description")
			r, err := o.CreateRole(c.Context(), ops.NewRole{Name: args[0], Site: site, Description: desc})
			if err != nil {
				return err
			}
			return printRoles(c, []ops.RoleJSON{r})
		}),
	}
	create.Flags().String("site", "", "Site of the role (name or host); needed when the config has several")
	create.Flags().String("description", "", "What the role is for")
	list := &cobra.Command{
		Use:   "list [--site <site>]",
		Short: "Lists roles, with how many users hold each",
		Args:  cobra.NoArgs,
		RunE: withOps(func(c *cobra.Command, o *ops.Ops, _ []string) error {
			site, _ := c.Flags().GetString("site")
			rs, err := o.ListRoles(c.Context(), site)
			if err != nil {
				return err
			}
			return printRoles(c, rs)
		}),
	}
	list.Flags().String("site", "", "Only this site's roles")
	grant := func(use, short string, do func(o *ops.Ops, c *cobra.Command, user, role, site string) (string, error)) *cobra.Command {
		cmd := &cobra.Command{
			Use:   use + " <email|id> <role>",
			Short: short,
			Args:  cobra.ExactArgs(2),
			RunE: withOps(func(c *cobra.Command, o *ops.Ops, args []string) error {
				site, _ := c.Flags().GetString("site")
				msg, err := do(o, c, args[0], args[1], site)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(c.OutOrStdout(), msg)
				return err
			}),
		}
		cmd.Flags().String("site", "", "Site of the user, when the email exists on several")
		return cmd
	}
	add := grant("add", "Grants a user a role (role, or role@site for a user known on every site)",
		func(o *ops.Ops, c *cobra.Command, user, role, site string) (string, error) {
			return o.AddRole(c.Context(), user, role, site)
		})
	remove := grant("remove", "Takes a role from a user",
		func(o *ops.Ops, c *cobra.Command, user, role, site string) (string, error) {
			r, err := o.RemoveRole(c.Context(), user, role, site)
			return r.Message, err
		})
	roles.AddCommand(create, list, add, remove)
	return roles
}

func printRoles(c *cobra.Command, rs []ops.RoleJSON) error {
	out := c.OutOrStdout()
	if wantJSON(c) {
		return writeJSON(out, rs)
	}
	tw := newTable(out)
	fmt.Fprintln(tw, "SITE\tROLE\tMEMBERS\tCREATED (UTC)\tDESCRIPTION")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", cell(r.Site), cell(r.Name), r.Members, r.CreatedAt.UTC().Format("2006-01-02 15:04"), dash(cell(r.Description)))
	}
	return tw.Flush()
}
