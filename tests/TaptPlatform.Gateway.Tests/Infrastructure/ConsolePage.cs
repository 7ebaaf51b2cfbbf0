using Microsoft.Playwright;

namespace TaptPlatform.Gateway.Tests.Infrastructure;

/// <summary>The web console in Debian's headless Chromium, collecting every browser-side error.</summary>
internal sealed class ConsolePage : IAsyncDisposable
{
    private readonly IPlaywright _playwright;
    private readonly IBrowser _browser;

    private ConsolePage(IPlaywright playwright, IBrowser browser, IPage page)
    {
        _playwright = playwright;
        _browser = browser;
        Page = page;
        page.Console += (_, m) => { if (m.Type == "error") Errors.Add(m.Text); };
        page.PageError += (_, e) => Errors.Add(e);
        page.SetDefaultTimeout(30_000);
    }

    // Expectations wait for the page's state, not for a deadline: on a loaded 2-core machine an update that normally
    // takes a second can take ten (Playwright's own default is 5 s).
    static ConsolePage() => Assertions.SetDefaultExpectTimeout(30_000);

    public IPage Page { get; }
    public List<string> Errors { get; } = [];

    public static async Task<ConsolePage> OpenAsync(Uri baseAddress)
    {
        var playwright = await Playwright.CreateAsync();
        var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = BrowserTests.Chromium,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        });
        var context = await browser.NewContextAsync(new BrowserNewContextOptions
        {
            ViewportSize = new ViewportSize { Width = 1440, Height = 1000 },
            BaseURL = baseAddress.ToString(),
            Locale = "en-GB",
        });
        return new ConsolePage(playwright, browser, await context.NewPageAsync());
    }

    public async ValueTask DisposeAsync()
    {
        await _browser.DisposeAsync();
        _playwright.Dispose();
    }
}
