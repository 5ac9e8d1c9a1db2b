return Curvature.Lab.Cli.Run(args, Console.Out, Console.Error);
