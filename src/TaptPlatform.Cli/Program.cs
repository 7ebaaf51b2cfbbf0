using TaptPlatform.Cli;

return TaptCli.Run(args);
